package schema

// needsScript reports whether a restore with a pg_restore of toolMajor into a
// server of targetMajor must go through pgmove's own run of pg_restore's
// script (restoreScript): from 17 on, pg_restore starts every session with
// SET transaction_timeout = 0, an unknown parameter (an error) before 17.
func needsScript(toolMajor, targetMajor int) bool {
	return targetMajor > 0 && toolMajor >= 17 && targetMajor < 17
}
