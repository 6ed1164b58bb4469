package compare

import (
	"sort"
	"strconv"
)

// sortRows orders rows by table, then key (numbers as numbers), so a report
// reads the same on every run.
func sortRows(rows []Row) {
	sort.SliceStable(rows, func(a, b int) bool {
		ra, rb := rows[a], rows[b]
		if ra.Table != rb.Table {
			return ra.Table < rb.Table
		}
		for i := range min(len(ra.keyText), len(rb.keyText)) {
			x, y := ra.keyText[i], rb.keyText[i]
			if x == y {
				continue
			}
			fx, ex := strconv.ParseFloat(x, 64)
			fy, ey := strconv.ParseFloat(y, 64)
			if ex == nil && ey == nil && fx != fy {
				return fx < fy
			}
			return x < y
		}
		return false
	})
}
