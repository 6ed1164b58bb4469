package carry

// Kind is one kind of object copy-seq carries besides sequences, worded
// once: check's findings, the plan's scripts and its runbook say what
// copy-seq does from these, so none of them can claim it does less (or
// more) than the functions of this package.
type Kind struct {
	Code string // the check finding's code for such an object
	Name string // plural, as a heading
	Does string // what copy-seq does with them at the switch
	// Brief is Does in a few words, for a list.
	Brief string
}

// Kinds are listed in the order copy-seq runs them, after the sequences.
var Kinds = []Kind{
	{Code: "large_objects", Name: "large objects",
		Does:  "copy-seq makes the target's large objects the source's, by OID and content (created, rewritten or deleted); migrate copies them once after the catch-up, so the switch carries only what changed",
		Brief: "large objects made the source's, by OID and content"},
	{Code: "unlogged_table", Name: "unlogged tables",
		Does:  "copy-seq empties it on the target and copies its rows from the source again",
		Brief: "unlogged tables emptied and their rows copied again"},
	{Code: "materialized_view", Name: "materialized views",
		Does:  "copy-seq refreshes it on the target (when the source's is populated)",
		Brief: "materialized views refreshed"},
}

// Carried returns what copy-seq does with objects of a check finding's
// code, or "" when copy-seq does not carry them.
func Carried(code string) string {
	for _, k := range Kinds {
		if k.Code == code {
			return k.Does
		}
	}
	return ""
}
