package plan

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/carry"
	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/replication"
	"github.com/pgmove/pgmove/internal/switchover"
)

// maxTablesListed bounds the runbook's table list; the scripts list them all.
const maxTablesListed = 40

type specialRow struct {
	Object, Kind, Happens, Action string
	AtSwitch                      bool // needs a hand at the switch
}

type runbookData struct {
	M                      *config.Migration
	F                      *Facts
	Title, Context, Dir    string
	Pgmove, Written        string
	SrcVersion, DstVersion string
	Admin, Repl            string
	HBA                    string // lines for the source's pg_hba.conf
	StopHBA                string // the switch's lines
	Terminate              string // SQL ending the applications' sessions
	Role                   string // CREATE ROLE and GRANTs
	Unfixed                []Table
	FixSQL                 string
	Tables                 []Table
	TablesMore             int
	Special                []specialRow
	AtSwitch               []specialRow
	Findings               []Finding
	Size, Largest          string
	Estimate               string
	RatePerWorker          string
	Native                 bool   // the initial copy is PostgreSQL's table sync
	RatePerJob             string // the snapshot copy's assumed rate per job
	Jobs                   int    // its jobs, as the estimate assumes them
	JobsSet                bool   // set by jobs in migration.yml
	Split, LargestWhole    string // split_larger_than, and the largest table copied whole
	OldSource              bool   // a source before 14 splits only on an integer key
	Access                 []string
	TargetHost             string
	Replicas               []string // the target's members but its leader, once each
	CopySeq                string   // what copy-seq does for this migration
	Scripts                []Script
	Switch                 switchPlan
}

// switchPlan is what ./switchover does with migration.yml's settings, as
// pgmove switchover resolves them (flags given to the script win).
type switchPlan struct {
	Fence                   string   // pgbouncer, database or none
	Consoles                []string // pgbouncer admin consoles, password-free
	INI, Entry, Route       string   // pgbouncer_ini, its entry, what the entry becomes
	Roles                   []string // app_roles, as SQL identifiers
	MaxPause                string
	Hook                    string
	RevPub, RevSub, RevSlot string // the way back a switchover leaves running
	OriginNone              bool   // the source is 16+: the reverse subscription has origin = none
}

func switchPlanFor(m *config.Migration, f *Facts) switchPlan {
	sp := switchPlan{Fence: m.Fence, INI: m.PgBouncerINI, Entry: orPlaceholder(m.PgBouncerDB, m.Src.DB), Hook: m.SwitchHook, MaxPause: "2s"}
	for _, u := range m.PgBouncer {
		sp.Consoles = append(sp.Consoles, config.Redact(u))
	}
	if sp.Fence == "" {
		sp.Fence = switchover.FenceNone
		if len(m.PgBouncer) > 0 {
			sp.Fence = switchover.FencePgBouncer
		}
	}
	for _, r := range m.AppRoles {
		sp.Roles = append(sp.Roles, pgx.Identifier{r}.Sanitize())
	}
	if m.MaxPause != 0 {
		sp.MaxPause = m.MaxPause.String()
	}
	sp.Route = fmt.Sprintf("host=%s port=%s dbname=%s", m.Dst.Host(), m.Dst.Port(), m.Dst.DB)
	sp.RevPub, sp.RevSub, sp.RevSlot = switchover.ReverseNames(m)
	n, err := strconv.Atoi(major(f.Source.Version))
	sp.OriginNone = err == nil && n >= 16
	return sp
}

func runbookTitle(m *config.Migration) string {
	return fmt.Sprintf("Migration runbook: %s.%s to %s.%s", m.Src.Cluster, m.Src.DB, m.Dst.Cluster, m.Dst.DB)
}

// Runbook renders runbook.md: the seed's manual template (announcement,
// preparations, stock migration, switch moment, aftercare) filled in with
// this migration's facts and commands.
func Runbook(in Input) ([]byte, error) {
	m, f := in.M, in.Facts
	d := runbookData{
		M: m, F: f, Title: runbookTitle(m), Context: dirName(m), Dir: m.ContextDir, Pgmove: in.Pgmove,
		Written:    f.Written.Format(time.RFC3339),
		SrcVersion: version(f.Source), DstVersion: version(f.Target),
		Admin: orPlaceholder(m.Src.User(), "<admin>"), Repl: orPlaceholder(m.ReplUser, "<replication-user>"),
		Unfixed: f.Unfixed(), Size: check.PrettyBytes(f.SourceBytes), Largest: check.PrettyBytes(f.LargestBytes),
		Estimate:      RoughDuration(f.Estimate()),
		RatePerWorker: check.PrettyBytes(copyRate) + "/s",
		Native:        f.Native(),
		RatePerJob:    check.PrettyBytes(jobRate) + "/s",
		Jobs:          f.jobs(), JobsSet: f.Jobs > 0,
		Split: sizeText(f.SplitLarger), LargestWhole: check.PrettyBytes(f.LargestWholeBytes),
		OldSource: oldSource(f.Source),
		Findings:  f.Findings, Scripts: ScriptsFor(m),
	}
	d.HBA, d.StopHBA = hbaLines(m)
	d.Terminate = terminateSQL(m)
	d.Role = roleSQL(m, f)
	var fixes []string
	for _, t := range d.Unfixed {
		fixes = append(fixes, t.Fix)
	}
	d.FixSQL = strings.Join(fixes, "\n")
	d.Tables = f.Tables
	if len(d.Tables) > maxTablesListed {
		d.Tables, d.TablesMore = biggest(f.Tables, maxTablesListed), len(f.Tables)-maxTablesListed
	}
	for _, o := range f.Special {
		row := special(o)
		d.Special = append(d.Special, row)
		if row.AtSwitch {
			d.AtSwitch = append(d.AtSwitch, row)
		}
	}
	d.Access, d.TargetHost = access(m)
	d.Replicas = targetReplicas(m)
	d.CopySeq = copySeqDoes(f)
	d.Switch = switchPlanFor(m, f)
	var b bytes.Buffer
	if err := templates.ExecuteTemplate(&b, "runbook.md.tmpl", d); err != nil {
		return nil, fmt.Errorf("plan: render runbook: %w", err)
	}
	return b.Bytes(), nil
}

func version(e Endpoint) string {
	if !e.Reachable {
		if e.Error != "" {
			return "unreachable when the plan was written (" + e.Error + ")"
		}
		return "unreachable when the plan was written"
	}
	if f := strings.Fields(e.Version); len(f) > 0 {
		return "PostgreSQL " + f[0]
	}
	return "PostgreSQL"
}

// sizeText words a size as migration.yml would set it (1GB), or as pgmove
// prints a measured one when it is not a round number of units.
func sizeText(n int64) string {
	if s := size(n); strings.ContainsAny(s, "kMG") {
		return s
	}
	return check.PrettyBytes(n)
}

// oldSource reports a source before PostgreSQL 14, where the snapshot copy
// splits a table only on an integer key in physical order (no TID range scans).
func oldSource(e Endpoint) bool {
	n, err := strconv.Atoi(major(e.Version))
	return err == nil && n < 14
}

func orPlaceholder(s, p string) string {
	if s == "" {
		return p
	}
	return s
}

// biggest returns the n largest tables, in name order.
func biggest(tables []Table, n int) []Table {
	out := append([]Table{}, tables...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Bytes > out[j].Bytes })
	out = out[:n]
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// targetHosts are the hosts the subscription may connect from: the target's
// primary and every member that may become primary.
func targetHosts(m *config.Migration) []string {
	hosts := []string{m.Dst.Host()}
	for _, h := range m.DstList {
		if h != "" && !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// targetReplicas are the target's members other than its leader, once each.
func targetReplicas(m *config.Migration) []string { return targetHosts(m)[1:] }

// hbaLines are the source's pg_hba.conf lines: for the subscription (a
// logical walsender matches by database name, not by the replication
// keyword), and for the switch, when only pgmove and the subscription may
// still connect.
func hbaLines(m *config.Migration) (repl, stop string) {
	db, user := hbaName(m.Src.DB), hbaName(orPlaceholder(m.ReplUser, "<replication-user>"))
	var rows [][]string
	for i, h := range targetHosts(m) {
		why := "# dst_ip: the target's primary"
		if i > 0 {
			why = "# dst_list: a target member that may become primary"
		}
		rows = append(rows, []string{"host", db, user, hbaAddress(h), "scram-sha-256", why})
	}
	repl = align(rows)
	stopRows := [][]string{{"host", db, hbaName(orPlaceholder(m.Src.User(), "<admin>")), "<pgmove-host-ip>/32", "scram-sha-256", "# pgmove"}}
	for _, r := range rows {
		stopRows = append(stopRows, append(append([]string{}, r[:5]...), "# the subscription"))
	}
	stopRows = append(stopRows, []string{"host", db, "all", "all", "reject", "# everyone else: the applications"})
	return repl, align(stopRows)
}

// align lays out columns of words with two spaces between them.
func align(rows [][]string) string {
	var width []int
	for _, r := range rows {
		for i, w := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], len(w))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		var line strings.Builder
		for i, w := range r {
			if i == len(r)-1 {
				line.WriteString(w)
				break
			}
			line.WriteString(w + strings.Repeat(" ", width[i]-len(w)+2))
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

func terminateSQL(m *config.Migration) string {
	keep := []string{}
	for _, u := range []string{m.Src.User(), m.ReplUser} {
		if u != "" && !slices.Contains(keep, replication.QuoteLiteral(u)) {
			keep = append(keep, replication.QuoteLiteral(u))
		}
	}
	cond := ""
	if len(keep) > 0 {
		cond = "\n   AND usename NOT IN (" + strings.Join(keep, ", ") + ")"
	}
	return "SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity\n WHERE datname = " +
		replication.QuoteLiteral(m.Src.DB) + " AND backend_type = 'client backend'" + cond + "\n   AND pid <> pg_catalog.pg_backend_pid();"
}

// roleSQL creates the replication role and lets it read the migrated tables
// (the initial copy reads them as this role), with a placeholder password.
func roleSQL(m *config.Migration, f *Facts) string {
	role := pgx.Identifier{orPlaceholder(m.ReplUser, "replicator")}.Sanitize()
	lines := []string{fmt.Sprintf("CREATE ROLE %s LOGIN REPLICATION BYPASSRLS PASSWORD '<password>';", role)}
	seen := map[string]bool{}
	var schemas []string
	for _, t := range f.Tables {
		s := schemaOf(t.Name)
		if !seen[s] {
			seen[s] = true
			schemas = append(schemas, s)
		}
	}
	sort.Strings(schemas)
	for _, s := range schemas {
		q := pgx.Identifier{s}.Sanitize()
		lines = append(lines, fmt.Sprintf("GRANT USAGE ON SCHEMA %s TO %s;", q, role),
			fmt.Sprintf("GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s;", q, role))
	}
	return strings.Join(lines, "\n")
}

// schemaOf splits the schema off a name as catalog.Table.String prints it
// (quoted only where needed).
func schemaOf(name string) string {
	if strings.HasPrefix(name, `"`) {
		var b strings.Builder
		for i := 1; i < len(name); i++ {
			if name[i] == '"' {
				if i+1 < len(name) && name[i+1] == '"' {
					b.WriteByte('"')
					i++
					continue
				}
				return b.String()
			}
			b.WriteByte(name[i])
		}
		return b.String()
	}
	s, _, _ := strings.Cut(name, ".")
	return s
}

// special says what happens to a special object. Where pgmove does not
// carry the object itself, it says so, with what to do at the switch.
func special(o Object) specialRow {
	r := specialRow{Object: o.Object, Kind: strings.ReplaceAll(o.Code, "_", " "), Happens: o.Message, Action: o.Fix}
	// What copy-seq carries is said by the code that carries it.
	if does := carry.Carried(o.Code); does != "" {
		what, _, _ := strings.Cut(o.Message, ":")
		r.Happens = what + ": not replicated; at the switch " + does
		r.AtSwitch = true
		if o.Code == "materialized_view" {
			r.Action = "" // the refresh is copy-seq's
		}
	}
	if r.Object == "" {
		r.Object = "(database)"
	}
	if r.Action == "" {
		r.Action = "none"
	}
	return r
}

// access lists how applications reach the target after the switch, from
// dst_dns, dst_vip, dst_ip and dst_list, and the host they should use.
func access(m *config.Migration) (lines []string, host string) {
	port := m.Dst.Port()
	host = m.Dst.Host()
	if m.DstVIP != "" {
		lines = append(lines, fmt.Sprintf("VIP %s (dst_vip): bind it on the target's primary, or repoint the address applications use to it", code(m.DstVIP+":"+port)))
		host = m.DstVIP
	}
	if m.DstDNS != "" {
		lines = append(lines, fmt.Sprintf("DNS name %s (dst_dns): applications that connect by name follow it once its record points at the target's primary%s", code(m.DstDNS), vipHint(m)))
		host = m.DstDNS
	}
	lines = append(lines, fmt.Sprintf("primary %s (dst_ip): the address that takes writes", code(m.Dst.Host()+":"+port)))
	for _, h := range targetReplicas(m) {
		lines = append(lines, fmt.Sprintf("replica %s (dst_list): read-only traffic may go here", code(h+":"+port)))
	}
	return lines, host
}

func vipHint(m *config.Migration) string {
	if m.DstVIP != "" {
		return " (the VIP " + m.DstVIP + ")"
	}
	return " (" + m.Dst.Host() + ")"
}

// copySeqDoes says what copy-seq does for this migration, from what the
// check found and the carry package's own words.
func copySeqDoes(f *Facts) string {
	parts := []string{fmt.Sprintf("every sequence's value (%d), set on the target in one transaction, never moving one back", f.Sequences)}
	for _, k := range carry.Kinds {
		for _, o := range f.Special {
			if o.Code == k.Code {
				parts = append(parts, k.Brief)
				break
			}
		}
	}
	return strings.Join(parts, "; ")
}
