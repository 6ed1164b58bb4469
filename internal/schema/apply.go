package schema

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The apply worker receives each row in the text form the source's output
// functions write (pgmove's subscriptions are not binary) and hands it to
// the target's input functions. A schema difference stops the apply only
// when the target cannot take what the source sends: a column the target
// lacks, a type that refuses the source's values, an enum without the
// source's labels, a NOT NULL column the source never fills. The functions
// here say which differences do, and why, for Difference.Stops.

// columnMissingStops: the target lacks a column the source replicates.
// Generated columns are not replicated (the target computes them).
func columnMissingStops(sc *columnDef) string {
	if sc.generated != "" {
		return ""
	}
	return "the target lacks the column: the apply stops at the first change to the table"
}

// columnExtraStops: a column only the target has stops the apply when it
// is NOT NULL without a default (the source never sends a value for it).
func columnExtraStops(dc *columnDef) string {
	if dc.notNull && dc.defaultExpr == "" && dc.genExpr == "" && dc.identity == "" {
		return "the target's column is NOT NULL without a default and the source has no such column: the apply stops at the first INSERT"
	}
	return ""
}

// columnTypeStops: the types differ and the target's may refuse a value of
// the source's, or the target refuses the NULLs the source allows.
func columnTypeStops(sc, dc *columnDef) string {
	if sc.typ != dc.typ && !TypeTakes(dc.typ, sc.typ) {
		return fmt.Sprintf("the target's column is %s where the source's is %s: the apply stops at the first value the target's type refuses", dc.typ, sc.typ)
	}
	if dc.notNull && !sc.notNull && sc.generated == "" {
		return "the target's column is NOT NULL where the source's is not: the apply stops at the first NULL"
	}
	return ""
}

var typmod = regexp.MustCompile(`^(.*?)\((\d+)(?:,(\d+))?\)(.*)$`)

// splitTypmod splits "character varying(10)" into its name and length.
func splitTypmod(t string) (name string, n, scale int, ok bool) {
	m := typmod.FindStringSubmatch(t)
	if m == nil {
		return t, 0, 0, false
	}
	n, _ = strconv.Atoi(m[2])
	if m[3] != "" {
		scale, _ = strconv.Atoi(m[3])
	}
	return m[1] + m[4], n, scale, true
}

// widens lists, by target type, the source types whose every text value it
// accepts as the same value. Anything to text (or an unbounded varchar) is
// accepted, whatever the type.
var widens = map[string][]string{
	"integer":          {"smallint"},
	"bigint":           {"smallint", "integer"},
	"numeric":          {"smallint", "integer", "bigint", "numeric"},
	"double precision": {"real", "smallint", "integer"},
	"real":             {"smallint"},
	"jsonb":            {"json"},
	"json":             {"jsonb"},
}

// TypeTakes reports whether a column of type dst (format_type's text) takes
// every value of a column of type src as it is: varchar(10) into text or
// varchar(20), integer into bigint, json into jsonb. Unknown pairs do not.
func TypeTakes(dst, src string) bool {
	if dst == src {
		return true
	}
	if strings.HasSuffix(dst, "[]") != strings.HasSuffix(src, "[]") {
		return false
	}
	dst, src = strings.TrimSuffix(dst, "[]"), strings.TrimSuffix(src, "[]")
	if dst == "text" || dst == "character varying" {
		return true
	}
	dn, dlen, dscale, dmod := splitTypmod(dst)
	sn, slen, sscale, smod := splitTypmod(src)
	switch {
	case dn == "character varying" && (sn == "character varying" || sn == "character") && smod:
		return dlen >= slen
	case dn == "character" && sn == "character" && smod:
		return dlen >= slen
	case dn == "numeric" && sn == "numeric" && dmod:
		return smod && dlen-dscale >= slen-sscale && dscale >= sscale
	case dn == "numeric" && dmod:
		return false
	case dmod || smod:
		return dn == sn && !dmod // a length or precision only on the source: the target's is unbounded
	}
	for _, s := range widens[dn] {
		if s == sn {
			return true
		}
	}
	return false
}

// enumStops: the target's enum lacks labels the source has.
func enumStops(src, dst []string) string {
	have := map[string]bool{}
	for _, l := range dst {
		have[l] = true
	}
	var missing []string
	for _, l := range src {
		if !have[l] {
			missing = append(missing, literal(l))
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "the target's enum lacks label(s) " + strings.Join(missing, ", ") + ": the apply stops at the first row that uses one"
}
