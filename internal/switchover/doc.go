// Package switchover moves the application from the source to the target
// in one step, and back (rollback): preflight, fence the writers, catch up
// to a fence LSN the target is proven to have applied, carry what
// replication does not, stop the forward subscription, start the reverse
// one, point the traffic at the other side, lift the fence. A step inside
// the pause that fails, or a target that does not reach the fence within
// the pause's budget, undoes the fence: the application goes on writing to
// the side it was on, nothing lost, nothing half-switched. The step
// running, the pause so far and the WAL left to the fence are kept in a
// Progress the caller reads and shows; this package draws nothing.
//
// It composes the step packages (replication, sequence, carry); it does not
// know about the CLI. It never writes into the application's tables.
package switchover
