// Package abort undoes a migration that will not be finished: it lifts a
// fence a killed switchover holds, drops the subscription (target), the
// publication and slots (source) and the way back a switchover made (the
// source's subscription, the target's publication and slot), and, only
// when asked, empties the target tables the copy ledger proves pgmove
// loaded. What a side it cannot reach still holds is returned with the
// statements that drop it.
//
// It composes the step packages (replication, copy, switchover); it does
// not know about the CLI and never touches a table the ledger does not
// name.
package abort
