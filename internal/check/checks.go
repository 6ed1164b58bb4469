package check

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/schema"
)

func (c *checker) versions(ctx context.Context) error {
	if c.src != nil {
		if c.src.VersionNum < 100000 {
			c.r.add(Error, config.Source, "version", "", fmt.Sprintf("PostgreSQL %s has no logical replication", c.src.Version),
				"upgrade the source to PostgreSQL 10 or newer, or migrate offline with pg_dump/pg_restore")
		}
		if dump, restore, err := schema.Tools(ctx, c.src.Major()); err != nil {
			c.r.add(Error, config.Source, "pg_dump", "", err.Error(), "")
		} else {
			c.r.add(Info, config.Source, "pg_dump", "", fmt.Sprintf("the schema is dumped with pg_dump %d (%s) and restored with pg_restore %d (%s)",
				dump.Major, dump.Path, restore.Major, restore.Path), "")
		}
	}
	if c.dst != nil && c.dst.VersionNum < 100000 {
		c.r.add(Error, config.Target, "version", "", fmt.Sprintf("PostgreSQL %s cannot subscribe", c.dst.Version), "use a target of PostgreSQL 10 or newer")
	}
	if c.src != nil && c.dst != nil && c.dst.Major() < c.src.Major() {
		c.r.add(Warning, config.Target, "version", "", fmt.Sprintf("the target (%d) is older than the source (%d): schema objects that use newer features will fail to restore", c.dst.Major(), c.src.Major()), "use a target of the same or a newer major version")
	}
	return nil
}

// settings reads several settings as integers or strings at once.
func settings(ctx context.Context, c *cluster.Conn, names ...string) (map[string]string, error) {
	rows, err := c.Query(ctx, "SELECT name, setting FROM pg_catalog.pg_settings WHERE name = ANY($1)", names)
	if err != nil {
		return nil, c.Wrap("read settings", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			return nil, c.Wrap("read settings", err)
		}
		out[n] = v
	}
	return out, c.Wrap("read settings", rows.Err())
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// syncWorkers is how many table-sync workers (each with its own slot and
// walsender) the native copy runs at once: the target decides.
func (c *checker) syncWorkers(ctx context.Context) int {
	if !c.o.Native || c.dst == nil {
		return 0
	}
	s, err := settings(ctx, c.dst, "max_sync_workers_per_subscription")
	if err != nil {
		return 2
	}
	return atoi(s["max_sync_workers_per_subscription"])
}

func (c *checker) sourceSettings(ctx context.Context) error {
	if c.src == nil {
		return nil
	}
	s, err := settings(ctx, c.src, "wal_level", "max_replication_slots", "max_wal_senders")
	if err != nil {
		return err
	}
	if s["wal_level"] != "logical" {
		c.r.add(Error, config.Source, "wal_level", "", fmt.Sprintf("wal_level is %q; logical replication needs logical", s["wal_level"]),
			"ALTER SYSTEM SET wal_level = logical;  -- then restart the source")
	}
	var standby bool
	var slotsUsed, senders int
	var ourSlot bool
	err = c.src.QueryRow(ctx, `SELECT pg_catalog.pg_is_in_recovery(),
		(SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,
		(SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'walsender')::int,
		EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)`, c.m.SlotName).
		Scan(&standby, &slotsUsed, &senders, &ourSlot)
	if err != nil {
		return c.src.Wrap("read replication state", err)
	}
	if standby {
		c.r.add(Error, config.Source, "standby", "", "the source is a standby: publications and slots are made on the primary", "point src at the primary")
	}
	sync := c.syncWorkers(ctx)
	need := sync
	if !ourSlot {
		need++
	}
	capacity(c.r, config.Source, "max_replication_slots", atoi(s["max_replication_slots"]), slotsUsed, need, sync)
	capacity(c.r, config.Source, "max_wal_senders", atoi(s["max_wal_senders"]), senders, sync+1, sync)
	return nil
}

// capacity reports a setting without headroom: an error when not even the
// subscription itself fits, a warning when table sync cannot run at full width.
func capacity(r *Report, side config.Side, name string, max, used, need, sync int) {
	free := max - used
	if free >= need {
		return
	}
	fix := fmt.Sprintf("ALTER SYSTEM SET %s = %d;  -- then restart the %s", name, used+need+2, side)
	if free < need-sync || free < 1 {
		r.add(Error, side, name, "", fmt.Sprintf("%s = %d leaves %d free (%d in use); the migration needs %d", name, max, free, used, need), fix)
		return
	}
	r.add(Warning, side, name, "", fmt.Sprintf("%s = %d leaves %d free (%d in use); the initial copy wants %d to run %d tables at once", name, max, free, used, need, sync), fix)
}

func (c *checker) targetSettings(ctx context.Context) error {
	if c.dst == nil {
		return nil
	}
	names := []string{"max_logical_replication_workers", "max_worker_processes", "max_replication_slots", "max_sync_workers_per_subscription"}
	// PostgreSQL 18 counts replication origins on their own; before, the
	// subscriber's max_replication_slots limited them.
	originSetting := "max_replication_slots"
	if c.dst.VersionNum >= 180000 {
		originSetting = "max_active_replication_origins"
		names = append(names, originSetting)
	}
	s, err := settings(ctx, c.dst, names...)
	if err != nil {
		return err
	}
	var standby bool
	var workers, origins int
	var ourSub bool
	err = c.dst.QueryRow(ctx, `SELECT pg_catalog.pg_is_in_recovery(),
		(SELECT count(*) FROM pg_catalog.pg_stat_subscription WHERE pid IS NOT NULL)::int,
		(SELECT count(*) FROM pg_catalog.pg_replication_origin)::int,
		EXISTS (SELECT 1 FROM pg_catalog.pg_subscription WHERE subname = $1)`, c.m.SubName).Scan(&standby, &workers, &origins, &ourSub)
	if err != nil {
		return c.dst.Wrap("read subscription state", err)
	}
	if standby {
		c.r.add(Error, config.Target, "standby", "", "the target is a standby: it cannot take a subscription", "point dst at the target cluster's primary")
	}
	sync := c.syncWorkers(ctx)
	need := sync
	if !ourSub {
		need++
	}
	capacity(c.r, config.Target, "max_logical_replication_workers", atoi(s["max_logical_replication_workers"]), workers, need, sync)
	capacity(c.r, config.Target, originSetting, atoi(s[originSetting]), origins, need, sync)
	if mw, mlw := atoi(s["max_worker_processes"]), atoi(s["max_logical_replication_workers"]); mw < mlw+1 {
		c.r.add(Warning, config.Target, "max_worker_processes", "", fmt.Sprintf("max_worker_processes = %d is below max_logical_replication_workers + 1 = %d: workers will be refused", mw, mlw+1),
			fmt.Sprintf("ALTER SYSTEM SET max_worker_processes = %d;  -- then restart the target", mlw+4))
	}
	return nil
}

func (c *checker) sourceTables(ctx context.Context) error {
	if c.src == nil {
		return nil
	}
	snap, err := catalog.Tables(ctx, c.src)
	if err != nil {
		return err
	}
	c.snap = snap
	c.r.Published = snap.Published(c.src.VersionNum, c.m.Include, c.m.Exclude)
	for _, t := range snap.Leaves(c.r.Published) {
		c.r.SourceBytes += t.Bytes
	}
	if len(c.r.Published) == 0 {
		c.r.add(Warning, config.Source, "tables", "", "no table to migrate: the database has no ordinary table, or include/exclude leave none", "check include/exclude")
	}
	return nil
}

func oids(tables []*catalog.Table) []uint32 {
	out := make([]uint32, len(tables))
	for i, t := range tables {
		out[i] = t.OID
	}
	return out
}

// tablesWhere lists the tables among oids for which cond (SQL over c.oid)
// is true.
func tablesWhere(ctx context.Context, conn *cluster.Conn, cond string, oidList []uint32, args ...any) ([]catalog.QualifiedName, error) {
	q := `SELECT n.nspname, c.relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.oid = ANY($1::oid[]) AND (` + cond + `) ORDER BY 1, 2`
	rows, err := conn.Query(ctx, q, append([]any{oidList}, args...)...)
	if err != nil {
		return nil, conn.Wrap("check table privileges", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (catalog.QualifiedName, error) {
		var q catalog.QualifiedName
		return q, r.Scan(&q.Schema, &q.Name)
	})
	return out, conn.Wrap("check table privileges", err)
}

func names(qs []catalog.QualifiedName, n int) string {
	var s []string
	for i, q := range qs {
		if i == n {
			s = append(s, fmt.Sprintf("and %d more", len(qs)-n))
			break
		}
		s = append(s, q.String())
	}
	return strings.Join(s, ", ")
}

// grantPerSchema writes one GRANT per schema for the tables listed.
func grantPerSchema(qs []catalog.QualifiedName, privilege, role string) string {
	seen := map[string]bool{}
	var lines []string
	for _, q := range qs {
		if !seen[q.Schema] {
			seen[q.Schema] = true
			lines = append(lines, fmt.Sprintf("GRANT %s ON ALL TABLES IN SCHEMA %s TO %s;", privilege, pgx.Identifier{q.Schema}.Sanitize(), pgx.Identifier{role}.Sanitize()))
		}
	}
	return strings.Join(lines, "\n")
}

func (c *checker) privileges(ctx context.Context) error {
	if c.src != nil && c.snap != nil {
		if err := c.sourceAdmin(ctx); err != nil {
			return err
		}
		if err := c.replicationRole(ctx); err != nil {
			return err
		}
	}
	if c.dst != nil {
		return c.targetAdmin(ctx)
	}
	return nil
}

func (c *checker) sourceAdmin(ctx context.Context) error {
	if c.src.Superuser {
		return nil
	}
	user := pgx.Identifier{c.src.User}.Sanitize()
	var canCreate bool
	if err := c.src.QueryRow(ctx, "SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE')").Scan(&canCreate); err != nil {
		return c.src.Wrap("check database privileges", err)
	}
	if !canCreate {
		c.r.add(Error, config.Source, "privilege", "", fmt.Sprintf("role %s cannot create a publication in database %s (no CREATE privilege)", user, c.m.Src.DB),
			fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", pgx.Identifier{c.m.Src.DB}.Sanitize(), user))
	}
	all := make([]*catalog.Table, 0, len(c.snap.Tables))
	all = append(all, c.snap.Tables...)
	unreadable, err := tablesWhere(ctx, c.src, "NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')", oids(all))
	if err != nil {
		return err
	}
	if len(unreadable) > 0 {
		c.r.add(Error, config.Source, "privilege", "", fmt.Sprintf("role %s cannot read %d table(s) (%s): pg_dump and the copy need SELECT on everything", user, len(unreadable), names(unreadable, 3)),
			grantPerSchema(unreadable, "SELECT", c.src.User)+"\n-- or connect as a superuser (pg_admin_username)")
	}
	notOwned, err := tablesWhere(ctx, c.src, "NOT pg_catalog.pg_has_role(c.relowner, 'USAGE')", oids(c.r.Published))
	if err != nil {
		return err
	}
	if len(notOwned) > 0 {
		c.r.add(Error, config.Source, "privilege", "", fmt.Sprintf("role %s does not own %d published table(s) (%s): only owners and superusers can add a table to a publication", user, len(notOwned), names(notOwned, 3)),
			"connect as a superuser (pg_admin_username), or as the tables' owner")
	}
	return nil
}

func (c *checker) replicationRole(ctx context.Context) error {
	role := c.m.ReplUser
	if role == "" {
		return nil
	}
	q := pgx.Identifier{role}.Sanitize()
	var exists, login, repl, super, bypass bool
	err := c.src.QueryRow(ctx, `SELECT true, rolcanlogin, rolreplication, rolsuper, rolbypassrls FROM pg_catalog.pg_roles WHERE rolname = $1`, role).
		Scan(&exists, &login, &repl, &super, &bypass)
	if err != nil && err != pgx.ErrNoRows {
		return c.src.Wrap("read replication role", err)
	}
	if !exists {
		c.r.add(Error, config.Source, "replication_role", role, fmt.Sprintf("role %s does not exist on the source", q),
			fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION BYPASSRLS PASSWORD '<password>';\n%s\n%s", q,
				usagePerSchema(schemasOf(c.r.Published), role), grantPerSchema(schemasOf(c.r.Published), "SELECT", role)))
		return nil
	}
	if !login {
		c.r.add(Error, config.Source, "replication_role", role, fmt.Sprintf("role %s cannot log in", q), fmt.Sprintf("ALTER ROLE %s LOGIN;", q))
	}
	if !repl && !super {
		c.r.add(Error, config.Source, "replication_role", role, fmt.Sprintf("role %s lacks the REPLICATION attribute the subscription needs", q), fmt.Sprintf("ALTER ROLE %s REPLICATION;", q))
	}
	if super {
		return nil
	}
	noUsage, err := tablesWhere(ctx, c.src, "NOT pg_catalog.has_schema_privilege($2::name, c.relnamespace, 'USAGE')", oids(c.r.Published), role)
	if err != nil {
		return err
	}
	if len(noUsage) > 0 {
		sev := Warning
		if c.o.Native {
			sev = Error
		}
		c.r.add(sev, config.Source, "replication_role", role, fmt.Sprintf("role %s has no USAGE on the schema of %d published table(s) (%s): it cannot read them", q, len(noUsage), names(noUsage, 3)),
			usagePerSchema(noUsage, role))
	}
	unreadable, err := tablesWhere(ctx, c.src, "NOT pg_catalog.has_table_privilege($2::name, c.oid, 'SELECT')", oids(c.r.Published), role)
	if err != nil {
		return err
	}
	if len(unreadable) > 0 {
		sev := Warning
		msg := "tables added later are copied by PostgreSQL's table sync, which reads them as this role"
		if c.o.Native {
			sev, msg = Error, "the initial copy reads them as this role"
		}
		c.r.add(sev, config.Source, "replication_role", role, fmt.Sprintf("role %s cannot read %d published table(s) (%s): %s", q, len(unreadable), names(unreadable, 3), msg),
			grantPerSchema(unreadable, "SELECT", role))
	}
	if !bypass {
		leaves := c.snap.Leaves(c.r.Published)
		var rls []string
		for _, t := range append(append([]*catalog.Table{}, c.r.Published...), leaves...) {
			if t.RLS {
				rls = append(rls, t.String())
			}
		}
		if len(rls) > 0 {
			sort.Strings(rls)
			rls = dedup(rls)
			c.r.add(Error, config.Source, "replication_role", role, fmt.Sprintf("role %s does not bypass row-level security, enabled on %s: rows its policies hide would be silently missing on the target", q, cluster.ListSome(rls, 3)),
				fmt.Sprintf("ALTER ROLE %s BYPASSRLS;", q))
		}
	}
	return nil
}

// usagePerSchema writes one GRANT USAGE per schema of the tables listed.
func usagePerSchema(qs []catalog.QualifiedName, role string) string {
	seen := map[string]bool{}
	var lines []string
	for _, q := range qs {
		if !seen[q.Schema] {
			seen[q.Schema] = true
			lines = append(lines, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", pgx.Identifier{q.Schema}.Sanitize(), pgx.Identifier{role}.Sanitize()))
		}
	}
	return strings.Join(lines, "\n")
}

func schemasOf(tables []*catalog.Table) []catalog.QualifiedName {
	var out []catalog.QualifiedName
	for _, t := range tables {
		out = append(out, catalog.QualifiedName{Schema: t.Schema, Name: t.Name})
	}
	return out
}

func dedup(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

func (c *checker) targetAdmin(ctx context.Context) error {
	if c.dst.Superuser {
		return nil
	}
	user := pgx.Identifier{c.dst.User}.Sanitize()
	var canCreate, canSub bool
	err := c.dst.QueryRow(ctx, `SELECT pg_catalog.has_database_privilege(pg_catalog.current_database(), 'CREATE'),
		EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pg_create_subscription'
		        AND pg_catalog.pg_has_role(current_user, oid, 'USAGE'))`).Scan(&canCreate, &canSub)
	if err != nil {
		return c.dst.Wrap("check database privileges", err)
	}
	if !canCreate {
		c.r.add(Error, config.Target, "privilege", "", fmt.Sprintf("role %s cannot create schemas in database %s (no CREATE privilege)", user, c.m.Dst.DB),
			fmt.Sprintf("GRANT CREATE ON DATABASE %s TO %s;", pgx.Identifier{c.m.Dst.DB}.Sanitize(), user))
	}
	// PostgreSQL 16 lets a role with the privileges of
	// pg_create_subscription (and CREATE on the database) subscribe;
	// before, only superusers can.
	switch {
	case c.dst.VersionNum < 160000:
		c.r.add(Error, config.Target, "privilege", "", fmt.Sprintf("role %s is not a superuser, and PostgreSQL %d lets only superusers create subscriptions (pg_create_subscription exists from 16 on)", user, c.dst.VersionNum/10000),
			"connect to the target as a superuser (pg_admin_username), or migrate to a target of PostgreSQL 16 or newer")
	case !canSub:
		c.r.add(Error, config.Target, "privilege", "", fmt.Sprintf("role %s cannot create a subscription: it is not a superuser and lacks the privileges of pg_create_subscription", user),
			fmt.Sprintf("GRANT pg_create_subscription TO %s;", user))
	default:
		// A non-superuser's subscription must log in to the source with a
		// password (password_required, 16+).
		if cfg, err := pgconn.ParseConfig(c.m.SubConn.String()); err == nil && cfg.Password == "" {
			c.r.add(Error, config.Target, "privilege", "", fmt.Sprintf("role %s is not a superuser, so its subscription must log in to the source with a password (password_required), and pgmove found none for replication user %s", user, pgx.Identifier{c.m.ReplUser}.Sanitize()),
				fmt.Sprintf("put the password of %s in pgmove's .pgpass (PGPASSFILE) or PGPASSWORD, and make pg_hba.conf on the source ask for it (scram-sha-256)", c.m.ReplUser))
		}
	}
	return nil
}

func (c *checker) replicationConnection(ctx context.Context) error {
	if !c.o.Probe {
		return nil
	}
	// When pgmove's own connection to the source failed and the replication
	// connection is the same one (same user, same address), the probe can
	// only fail the same way: the connect finding already says why.
	sameAsAdmin := c.src == nil && !c.m.SubConnSet && c.m.ReplUser == c.m.Src.User()
	if c.m.ReplUser != "" && !sameAsAdmin {
		if err := replication.ProbeReplication(ctx, c.m); err != nil {
			// pg_hba.conf is the fix only when it is what refused the
			// connection; a wrong password, a missing database or a
			// server that does not answer say their own fix.
			fix := ""
			if cluster.SQLState(err) == pgerrcode.InvalidAuthorizationSpecification {
				fix = fmt.Sprintf("# pg_hba.conf on the source, then SELECT pg_reload_conf();\nhost %s %s <pgmove-and-target-host-ip>/32 scram-sha-256",
					hbaName(c.m.Src.DB), hbaName(c.m.ReplUser))
			}
			c.r.add(Error, config.Source, "replication_connection", c.m.ReplUser, strip(err, config.Source), fix)
			return nil
		}
	}
	if c.dst == nil || c.src == nil || !c.canSubscribe(ctx) {
		return nil
	}
	if err := replication.ProbeSubscription(ctx, c.dst, c.m); err != nil {
		c.r.add(Error, config.Target, "subscription_connection", "", strip(err, config.Target)+
			" (the target server opens this connection itself)",
			fmt.Sprintf("# pg_hba.conf on the source must admit the target host, then SELECT pg_reload_conf();\nhost %s %s <target-host-ip>/32 scram-sha-256\n# the password comes from pgmove's .pgpass/PGPASSWORD for %s, or the target's ~postgres/.pgpass; or set sub_conn",
				hbaName(c.m.Src.DB), hbaName(c.m.ReplUser), c.m.ReplUser))
	}
	return nil
}

func (c *checker) canSubscribe(ctx context.Context) bool {
	if c.dst.Superuser {
		return true
	}
	var ok bool
	_ = c.dst.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'pg_create_subscription'
		AND pg_catalog.pg_has_role(current_user, oid, 'USAGE'))`).Scan(&ok)
	return ok
}

// hbaName quotes a database or role name for pg_hba.conf when needed.
func hbaName(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t,\"#") && s == strings.ToLower(s) {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}
