package cli

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/copy"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/schema"
)

type createSubOptions struct {
	dryRun     bool
	force      bool
	copy       copyFlags
	withOwners bool
	withGrants bool
	json       bool
}

func newCreateSubCmd(g *globals) *cobra.Command {
	o := &createSubOptions{}
	cmd := &cobra.Command{
		Use:   "create-sub",
		Short: "Copy the data and create the subscription on the target: initial copy, then live changes",
		Long: `create-sub makes the target a live copy of the source: the initial copy of every
published table, then the subscription (default sub_<src_cls>_<src_db>) that
streams the changes, connected to the source as the replication user. Its
replication slot on the source has the same name.

With --copy snapshot (the default) pgmove creates the slot with an exported
snapshot, copies every table in parallel under it (binary COPY where types
allow, tables over --split-larger-than by several sessions at once, the
others with COPY FREEZE from 64MB), builds the indexes and constraints, then
creates the subscription on that slot without a copy and starts it at the
slot's consistent point: no row missed, none twice. With --copy native,
PostgreSQL's own table sync copies each table, as in the seed.

An interrupted snapshot copy is restarted from a new slot on the next run
(its snapshot died with the process); one whose data were all copied
resumes at the index builds. Rerunning after success changes nothing; it
enables a disabled subscription and refreshes it when the publication
gained tables (which then get PostgreSQL's table sync). It refuses when the
target lacks published tables (run copy-schema) or when they already hold
rows, unless --force (native copy only).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := newSession(g, "create-sub")
			if err != nil {
				return err
			}
			defer s.close()
			return s.withJSON(o.json, o.dryRun, func() error { return runCreateSub(cmd.Context(), s, o) })
		},
	}
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "print the statements, change nothing")
	cmd.Flags().BoolVar(&o.force, "force", false, "native copy: create the subscription although target tables hold rows")
	cmd.Flags().BoolVar(&o.json, "json", false, "print what was done (or, with --dry-run, would be) as one JSON object")
	cmd.Flags().BoolVar(&o.withOwners, "with-owners", false, "snapshot copy: restore owners of the objects created after the copy")
	cmd.Flags().BoolVar(&o.withGrants, "with-grants", false, "snapshot copy: restore grants and owners of the objects created after the copy")
	o.copy.register(cmd)
	return cmd
}

func runCreateSub(ctx context.Context, s *session, o *createSubOptions) error {
	copyOpts, err := o.copy.resolve(s)
	if err != nil {
		return err
	}
	if o.force && o.copy.method != "native" {
		return &usageError{fmt.Errorf("--force applies to --copy native only: the snapshot copy loads into empty tables, and empties only tables it loaded itself")}
	}
	if err := s.connectBoth(ctx); err != nil {
		return err
	}
	if !o.dryRun {
		if err := s.begin(ctx); err != nil {
			return err
		}
	}
	if o.copy.method == "snapshot" && o.dryRun && !s.subscribed(ctx) {
		return describeHandoff(ctx, s, copyOpts)
	}
	if o.copy.method == "snapshot" && !o.dryRun && !s.subscribed(ctx) {
		return s.step("create-sub", func() (string, map[string]string, error) {
			res, err := handoff(ctx, s, &o.copy, copyOpts, o.withOwners || o.withGrants, o.withGrants, nil)
			if err != nil {
				return "", nil, err
			}
			msg := fmt.Sprintf("subscription %q streams changes after the snapshot copy of %d table(s)", s.m.SubName, res.Tables)
			noteHandoff(s, res)
			fmt.Fprintln(s.g.stdout, msg)
			return msg, map[string]string{"subscription": s.m.SubName, "slot": s.m.SlotName}, nil
		})
	}
	return s.step("create-sub", func() (string, map[string]string, error) {
		res, err := ensureSubscription(ctx, s, o.dryRun, o.force)
		if err != nil {
			return "", nil, err
		}
		msg := subscriptionMessage(s.m.SubName, res, o.dryRun)
		noteSubscription(s, res)
		if o.dryRun {
			fmt.Fprintln(s.g.stdout, "-- "+msg)
		} else {
			fmt.Fprintln(s.g.stdout, msg)
		}
		return msg, map[string]string{"subscription": s.m.SubName, "slot": s.m.SlotName, "oid": fmt.Sprint(res.OID)}, nil
	})
}

// noteSubscription puts what ensureSubscription did into --json's step.
func noteSubscription(s *session, res replication.SubscriptionResult) {
	s.note("subscription", s.m.SubName)
	s.note("created", res.Created)
	s.note("enabled", res.Enabled)
	s.note("refreshed", res.Refreshed)
	s.note("new_tables", res.NewTables)
}

// noteHandoff puts what the snapshot copy did into --json's step.
func noteHandoff(s *session, res *copy.HandoffResult) {
	s.note("subscription", s.m.SubName)
	s.note("slot", s.m.SlotName)
	s.note("created", true)
	s.note("tables", res.Tables)
	s.note("rows", res.Rows)
	s.note("bytes", res.Bytes)
	s.note("indexes", res.Indexes)
	s.note("consistent_point", res.ConsistentPoint.String())
	if res.Resumed != "" {
		s.note("resumed", res.Resumed)
	}
}

// subscriptionMessage says what ensureSubscription did, or under --dry-run
// what it would do: only the actions taken are named.
func subscriptionMessage(name string, res replication.SubscriptionResult, dryRun bool) string {
	var did, would []string
	if res.Enabled {
		did, would = append(did, "enabled"), append(would, "enable it")
	}
	if res.Refreshed {
		did = append(did, fmt.Sprintf("refreshed: %d new published table(s) get PostgreSQL's initial copy", res.NewTables))
		would = append(would, fmt.Sprintf("refresh it for %d new published table(s), which PostgreSQL then copies", res.NewTables))
	}
	switch {
	case res.Created && dryRun:
		return fmt.Sprintf("subscription %q does not exist: it would be created, then PostgreSQL copies every table and streams changes", name)
	case res.Created:
		return fmt.Sprintf("subscription %q created: PostgreSQL copies every table, then streams changes; follow it with pgmove progress --watch", name)
	case len(did) > 0 && dryRun:
		return fmt.Sprintf("subscription %q exists; create-sub would %s", name, strings.Join(would, " and "))
	case len(did) > 0:
		return fmt.Sprintf("subscription %q %s", name, strings.Join(did, " and "))
	case dryRun:
		return fmt.Sprintf("subscription %q exists, is enabled and has every published table: a rerun changes nothing", name)
	}
	return fmt.Sprintf("subscription %q already exists and is enabled; unchanged", name)
}

// subscriptionSpec is the subscription this migration makes, for the
// tables it publishes (binary = true only when they all allow it).
func subscriptionSpec(ctx context.Context, s *session, tables []catalog.QualifiedName) (replication.SubscriptionSpec, error) {
	secret, shown := replication.SubConninfo(s.m)
	spec := replication.SubscriptionSpec{
		Name: s.m.SubName, Publication: s.m.PubName, Slot: s.m.SlotName, Conninfo: secret, Shown: shown,
		CopyData: true, CreateSlot: true, Enabled: true, SrcVersion: s.src.VersionNum,
	}
	if s.src.VersionNum < 160000 || s.dst.VersionNum < 160000 {
		return spec, nil
	}
	ok, why, err := replication.BinarySafe(ctx, s.src, s.dst, tables)
	if err != nil {
		return spec, err
	}
	spec.Binary = ok
	if !ok {
		slog.Info("subscription: binary = false, text format: " + why)
	}
	return spec, nil
}

// tableNames are the qualified names of tables.
func tableNames(tables []*catalog.Table) []catalog.QualifiedName {
	out := make([]catalog.QualifiedName, len(tables))
	for i, t := range tables {
		out[i] = catalog.QualifiedName{Schema: t.Schema, Name: t.Name}
	}
	return out
}

// describeHandoff prints, for --dry-run, what the snapshot copy will do.
func describeHandoff(ctx context.Context, s *session, o copy.Options) error {
	snap, err := catalog.Tables(ctx, s.src)
	if err != nil {
		return err
	}
	published := snap.Published(s.src.VersionNum, s.m.Include, s.m.Exclude)
	leaves := snap.Leaves(published)
	var total int64
	for _, t := range leaves {
		total += t.Bytes
	}
	spec, err := subscriptionSpec(ctx, s, tableNames(published))
	if err != nil {
		return err
	}
	spec.CopyData, spec.CreateSlot, spec.Enabled = false, false, false
	w := s.g.stdout
	fmt.Fprintf(w, "-- source (replication connection as %s): create the slot with an exported snapshot\n", s.m.ReplUser)
	fmt.Fprintf(w, "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput EXPORT_SNAPSHOT;\n", s.m.SlotName)
	fmt.Fprintf(w, "-- copy %d table(s), %s, with %d job(s) under that snapshot: COPY ... TO STDOUT on the source into COPY ... FROM STDIN on the target", len(leaves), check.PrettyBytes(total), o.Jobs)
	if o.SplitLarger > 0 {
		fmt.Fprintf(w, "; tables over %s by %d sessions at once", check.PrettyBytes(o.SplitLarger), o.Jobs)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "-- target: build the source's indexes and constraints, then restore the rest of the schema (foreign keys, triggers, policies)")
	fmt.Fprintf(w, "-- target: create subscription %s on the slot, start it at the slot's consistent point, enable it\n", catalog.QuoteName(s.m.SubName))
	fmt.Fprintf(w, "%s;\n", replication.CreateSubscriptionSQL(spec.Name, spec.Shown, []string{spec.Publication}, spec.Options(s.dst.VersionNum)))
	fmt.Fprintf(w, "SELECT pg_catalog.pg_replication_origin_advance('pg_<subscription oid>', '<consistent point>');\n")
	fmt.Fprintf(w, "%s;\n", replication.AlterSubscriptionSQL(spec.Name, "ENABLE"))
	return nil
}

// subscribed reports whether the subscription exists already; after a
// snapshot copy, a rerun then behaves as with a native one.
func (s *session) subscribed(ctx context.Context) bool {
	sub, err := replication.Find(ctx, s.dst, s.m.SubName)
	return err == nil && sub != nil
}

// handoff runs the snapshot copy and hands it to the subscription.
func handoff(ctx context.Context, s *session, f *copyFlags, o copy.Options, withOwners, withACL bool, archive *schema.Archive) (*copy.HandoffResult, error) {
	pubs, err := catalog.Publications(ctx, s.src)
	if err != nil {
		return nil, err
	}
	found := false
	for _, p := range pubs {
		found = found || p.Name == s.m.PubName
	}
	if !found {
		return nil, fmt.Errorf("source: publication %q does not exist; run pgmove create-pub first (the publication must exist before the slot)", s.m.PubName)
	}
	snap, err := catalog.Tables(ctx, s.src)
	if err != nil {
		return nil, err
	}
	published := snap.Published(s.src.VersionNum, s.m.Include, s.m.Exclude)
	spec, err := subscriptionSpec(ctx, s, tableNames(published))
	if err != nil {
		return nil, err
	}
	status := copy.NewStatus(s.m.ContextDir)
	defer status.Close()
	status.Bind(s.src.Identity(), s.dst.Identity())
	o.Status = status
	return copy.Handoff(ctx, s.m, s.src, s.dst, published, spec, copy.HandoffOptions{
		Copy: o, MaintenanceWorkMem: f.memory, SlotTimeout: f.slotTimeout, WithOwners: withOwners, WithACL: withACL,
		Journal: s.journal, Runner: s.runner(false), Out: s.g.stdout, Archive: archive,
	})
}

func ensureSubscription(ctx context.Context, s *session, dryRun, force bool) (replication.SubscriptionResult, error) {
	var none replication.SubscriptionResult
	pubs, err := catalog.Publications(ctx, s.src)
	if err != nil {
		return none, err
	}
	found := false
	for _, p := range pubs {
		found = found || p.Name == s.m.PubName
	}
	if !found && !dryRun {
		return none, fmt.Errorf("source: publication %q does not exist; run pgmove create-pub first", s.m.PubName)
	}
	pubTables, err := catalog.PublicationTables(ctx, s.src, s.m.PubName)
	if err != nil {
		return none, err
	}
	dsnap, err := catalog.TablesWithoutSizes(ctx, s.dst)
	if err != nil {
		return none, err
	}
	var missing []string
	for _, q := range pubTables {
		if dsnap.Find(q.Schema, q.Name) == nil {
			missing = append(missing, q.String())
		}
	}
	if len(missing) > 0 {
		return none, fmt.Errorf("target: %d published table(s) do not exist on the target (%s); run pgmove copy-schema first", len(missing), cluster.ListSome(missing, 3))
	}
	sub, err := replication.Find(ctx, s.dst, s.m.SubName)
	if err != nil {
		return none, err
	}
	refresh := 0
	if sub == nil {
		if !force {
			full, err := schema.TablesWithRows(ctx, s.dst)
			if err != nil {
				return none, err
			}
			if len(full) > 0 {
				return none, fmt.Errorf("target: %d table(s) already hold rows (%s); the initial copy would add the source's rows to them: empty them, or pass --force", len(full), cluster.ListSome(full, 3))
			}
		}
		slots, err := catalog.Slots(ctx, s.src)
		if err != nil {
			return none, err
		}
		for _, sl := range slots {
			if sl.Name == s.m.SlotName {
				return none, fmt.Errorf("source: replication slot %q already exists, left by an earlier run (it retains WAL); run pgmove cleanup, or on the source: %s", sl.Name, replication.DropSlotSQL(sl.Name))
			}
		}
	} else {
		// Tables published but not yet in the subscription need a refresh.
		in := map[string]bool{}
		rows, err := s.dst.Query(ctx, `SELECT n.nspname, c.relname FROM pg_catalog.pg_subscription_rel sr
			JOIN pg_catalog.pg_class c ON c.oid = sr.srrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
			WHERE sr.srsubid = $1`, sub.OID)
		if err != nil {
			return none, s.dst.Wrap("read subscription tables", err)
		}
		for rows.Next() {
			var q catalog.QualifiedName
			if err := rows.Scan(&q.Schema, &q.Name); err != nil {
				rows.Close()
				return none, s.dst.Wrap("read subscription tables", err)
			}
			in[q.Ident()] = true
		}
		if err := rows.Err(); err != nil {
			return none, s.dst.Wrap("read subscription tables", err)
		}
		for _, q := range pubTables {
			if !in[q.Ident()] {
				refresh++
			}
		}
	}
	spec, err := subscriptionSpec(ctx, s, pubTables)
	if err != nil {
		return none, err
	}
	if sub == nil && s.src.SystemID == s.dst.SystemID {
		// Source and target databases are in one cluster: CREATE
		// SUBSCRIPTION would wait for ever for its own slot to be created
		// (the slot waits for the transaction running that statement to
		// end), so the slot is made first, as PostgreSQL's documentation
		// of CREATE SUBSCRIPTION says.
		if err := s.runner(dryRun).Exec(ctx, s.src, "create replication slot "+catalog.QuoteName(s.m.SlotName)+" first (source and target share a cluster)",
			"SELECT pg_catalog.pg_create_logical_replication_slot("+replication.QuoteLiteral(s.m.SlotName)+", 'pgoutput')"); err != nil {
			return none, err
		}
		spec.CreateSlot = false
		res, err := replication.EnsureSubscription(ctx, s.runner(dryRun), s.dst, spec, refresh)
		if err != nil && !dryRun {
			// The slot would retain WAL for a subscription that is not there.
			if _, derr := replication.DropSlot(context.WithoutCancel(ctx), s.runner(false), s.src, s.m.SlotName); derr != nil {
				slog.Warn(derr.Error())
			}
		}
		return res, err
	}
	return replication.EnsureSubscription(ctx, s.runner(dryRun), s.dst, spec, refresh)
}
