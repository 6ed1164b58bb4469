package plan

import (
	"strings"

	"github.com/pgmove/pgmove/internal/carry"
	"github.com/pgmove/pgmove/internal/config"
)

// Script is one executable of the context directory: the seed's name, the
// pgmove step it runs, and whether it changes anything.
type Script struct {
	Name    string // the seed's script name
	Command string // pgmove subcommand (and fixed arguments) it runs
	Usage   string // optional arguments it passes on
	Summary string
	Side    string // where it reads or writes
	// Mutating scripts show pgmove's --dry-run output and ask before the
	// real run, unless given -y.
	Mutating bool
	// ApplyFlag, for a read-only script, is the argument that makes it change
	// things (and so show and ask first).
	ApplyFlag string
	// Effect is one line for the script's header and the runbook.
	Effect string
	// Note is more of the header's comment, a line each: why the script
	// runs its step the way it does.
	Note []string
}

// Scripts are the context directory's scripts in the runbook's order: the
// seed's twelve, plus check, check-plan, switchover, rollback, cleanup and
// status. They are written for the default snapshot copy; ScriptsFor gives
// a migration's.
var Scripts = []Script{
	{Name: "check", Command: "check", Summary: "everything that blocks or endangers the migration, with the fix for each", Side: "both",
		Effect: "Read-only: connects to both sides, probes the replication connections (rolled back)."},
	{Name: "check-plan", Command: "plan --check", Summary: "what changed in the source's catalogue since this plan was written", Side: "source",
		Effect: "Read-only: exit 3 when the runbook no longer covers the catalogue (new tables, broken identities, new special objects)."},
	{Name: "check-replica-identity", Command: "check-replica-identity", Summary: "every migrated table with its keys, size and replica identity", Side: "source",
		Effect: "Read-only: exit 3 while a table's UPDATE and DELETE could not be replicated."},
	{Name: "check-replica-identity-solution", Command: "check-replica-identity-solution", Usage: "[--apply]", Summary: "the statements that give every table a replica identity", Side: "source",
		ApplyFlag: "--apply", Effect: "Prints the ALTER TABLE ... REPLICA IDENTITY statements; --apply runs them on the source."},
	{Name: "check-special-object", Command: "check-special-object", Summary: "objects logical replication does not carry, and what happens to each", Side: "source",
		Effect: "Read-only."},
	{Name: "copy-schema", Command: "copy-schema --section pre-data", Usage: "[--with-owners|--with-grants]", Summary: "restore the source's schema into the target, without the indexes, constraints and triggers that create-sub adds after the copy", Side: "target",
		Mutating: true, Effect: "Changes the target: creates what it lacks, in one transaction; never drops anything, refuses when target tables hold rows.",
		Note: []string{
			"Only the pre-data part (tables without indexes and constraints): the",
			"initial copy is the snapshot copy, which loads bare tables much faster;",
			"create-sub builds the indexes and constraints after the data, then",
			"restores the rest (foreign keys, triggers, policies).",
		}},
	{Name: "create-pub", Command: "create-pub", Summary: "create the publication on the source, or bring it up to date", Side: "source",
		Mutating: true, Effect: "Changes the source: CREATE PUBLICATION (or ALTER ... ADD/DROP TABLE) for the tables to migrate."},
	{Name: "create-sub", Command: "create-sub", Usage: "[--jobs N] [--with-owners|--with-grants]", Summary: "copy every table under one snapshot, build the indexes and constraints, then create the subscription for the live changes", Side: "both",
		Mutating: true, Effect: "Changes both: the replication slot on the source; the rows, indexes, constraints and subscription on the target. Runs until the copy is done.",
		Note: []string{
			"An interrupted copy restarts from a new slot when this runs again; one",
			"that copied every table resumes at the index builds.",
		}},
	{Name: "progress", Command: "progress", Usage: "[--watch]", Summary: "per-table copy state, replication lag, throughput and ETA", Side: "both",
		Effect: "Read-only."},
	{Name: "switchover", Command: "switchover", Usage: "[--max-pause D] [--json]", Summary: "move the application from the source to the target in one pause, with replication back for a rollback", Side: "both",
		Mutating: true, Effect: "Changes both, and where the traffic goes: the way back prepared ahead, then one pause (at most max_pause, 2s by default) to fence the writers, catch up, carry the sequences, turn the replication round and point the traffic at the target.",
		Note: []string{
			"The fence, the pgbouncer consoles and entry, the application roles, the",
			"pause's budget and the switch hook are migration.yml's (pgbouncer,",
			"pgbouncer_ini, pgbouncer_db, fence, app_roles, max_pause, switch_hook);",
			"a flag given here wins. Console passwords come from ~/.pgpass.",
			"Exit 0: switched, the application writes to the target. Exit 1: refused",
			"before any fence, or abandoned with the fence lifted and nothing switched",
			"(the application writes to the source), or switched but not finished",
			"(the message says what is left; a rerun finishes it). A rerun after a",
			"killed run finishes or undoes what it left, and says which.",
		}},
	{Name: "rollback", Command: "rollback", Usage: "[--max-pause D] [--json]", Summary: "after a switchover: move the application back to the source, through the reverse replication", Side: "both",
		Mutating: true, Effect: "Changes both, and where the traffic goes: the switchover's mirror image; the forward replication runs again afterwards, so a second switchover is possible.",
		Note: []string{
			"Refused, with nothing fenced, while the reverse replication (the source's",
			"subscription to the target) is not streaming: before any switchover, or",
			"once it was dropped. Same settings and exit codes as switchover.",
		}},
	{Name: "copy-seq", Command: "copy-seq", Usage: "[--offset N]", Summary: "copy every sequence's value to the target (at the switch, writes stopped)", Side: "target",
		Mutating: true, Effect: copySeqEffect()},
	{Name: "next-seq", Command: "next-seq", Usage: "[N]", Summary: "advance every target sequence N values (default 10000), a margin against conflicts", Side: "target",
		Mutating: true, Effect: "Changes the target: each run moves the sequences further."},
	{Name: "compare", Command: "compare", Usage: "[--checksum]", Summary: "compare row counts (--checksum: full content) and sequences on both sides", Side: "both",
		Effect: "Read-only: exit 3 when the sides differ."},
	{Name: "remove-sub", Command: "remove-sub", Summary: "disable and drop the subscription on the target (and its slot on the source)", Side: "target",
		Mutating: true, Effect: "Changes both: the target stops following the source."},
	{Name: "cleanup", Command: "cleanup", Summary: "drop everything the migration made: subscription, publication, slot, and the way back a switchover left", Side: "both",
		Mutating: true, Effect: "Changes both: data and schema are left alone."},
	{Name: "status", Command: "status", Summary: "where the migration stands and the next step", Side: "both",
		Effect: "Read-only."},
}

// nativeScripts replace the scripts whose step differs when the initial
// copy is PostgreSQL's table sync (copy: native), as in the seed: the whole
// schema first, indexes included, then a subscription that copies.
var nativeScripts = map[string]Script{
	"copy-schema": {Name: "copy-schema", Command: "copy-schema", Usage: "[--with-owners|--with-grants]", Summary: "restore the source's schema into the target", Side: "target",
		Mutating: true, Effect: "Changes the target: creates what it lacks, in one transaction; never drops anything, refuses when target tables hold rows."},
	"create-sub": {Name: "create-sub", Command: "create-sub", Summary: "create the subscription on the target: initial copy, then live changes", Side: "target",
		Mutating: true, Effect: "Changes both: the subscription on the target, its replication slot on the source; the initial copy starts."},
}

// ScriptsFor returns the scripts for m's initial copy.
func ScriptsFor(m *config.Migration) []Script {
	out := append([]Script{}, Scripts...)
	if copyMethod(m) == Native {
		for i, s := range out {
			if n, ok := nativeScripts[s.Name]; ok {
				out[i] = n
			}
		}
	}
	return out
}

// script finds a script by name.
func script(name string) Script {
	for _, s := range Scripts {
		if s.Name == name {
			return s
		}
	}
	panic("plan: no script " + name)
}

// copySeqEffect is the copy-seq script's effect, from what carry carries.
func copySeqEffect() string {
	var names []string
	for _, k := range carry.Kinds {
		names = append(names, k.Brief)
	}
	last := len(names) - 1
	return "Changes the target: setval on every sequence (one transaction, never moving one back); " +
		strings.Join(names[:last], "; ") + "; " + names[last] + " (replication carries none of them)."
}
