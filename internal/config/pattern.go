package config

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Pattern selects tables by schema and name, as psql's \dt patterns do:
// "sales.orders", "sales" (every table of the schema), "public.tmp_*",
// "*.audit_log", `"My Schema"."Order Lines"`. Unquoted parts are folded to
// lower case and may hold * and ?; quoted parts are literal.
type Pattern struct {
	Schema, Table segment
	Text          string
}

type segment struct {
	parts []globPart
}

type globPart struct {
	lit  string
	wild byte // 0, '*' or '?'
}

// ParsePattern parses one include/exclude entry.
func ParsePattern(s string) (Pattern, error) {
	p := Pattern{Text: s}
	segs, err := splitPattern(s)
	if err != nil {
		return p, err
	}
	switch len(segs) {
	case 1:
		p.Schema = segs[0]
		p.Table = segment{parts: []globPart{{wild: '*'}}}
	case 2:
		p.Schema, p.Table = segs[0], segs[1]
	default:
		return p, fmt.Errorf("expected schema or schema.table, found %d dot-separated parts", len(segs))
	}
	return p, nil
}

func splitPattern(s string) ([]segment, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	var segs []segment
	cur := segment{}
	lit := strings.Builder{}
	flush := func() {
		if lit.Len() > 0 {
			cur.parts = append(cur.parts, globPart{lit: lit.String()})
			lit.Reset()
		}
	}
	empty := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], '"')
				if k < 0 {
					return nil, fmt.Errorf("unterminated quoted identifier")
				}
				lit.WriteString(s[j : j+k])
				j += k + 1
				if j < len(s) && s[j] == '"' { // "" is a literal quote
					lit.WriteByte('"')
					j++
					continue
				}
				break
			}
			i = j - 1
			empty = false
		case c == '.':
			flush()
			if empty {
				return nil, fmt.Errorf("empty name before '.'")
			}
			segs = append(segs, cur)
			cur, empty = segment{}, true
		case c == '*' || c == '?':
			flush()
			cur.parts = append(cur.parts, globPart{wild: c})
			empty = false
		case c == ' ' || c == '\t':
			return nil, fmt.Errorf("unquoted space; quote names that hold spaces, e.g. \"My Schema\".orders")
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			lit.WriteString(strings.ToLower(string(r)))
			i += size - 1
			empty = false
		}
	}
	flush()
	if empty {
		return nil, fmt.Errorf("empty name at the end")
	}
	return append(segs, cur), nil
}

// Match reports whether the pattern selects schema.table.
func (p Pattern) Match(schema, table string) bool {
	return p.Schema.match(schema) && p.Table.match(table)
}

func (s segment) match(name string) bool {
	// Flatten to runes, -1 for '*' and -2 for '?', then match greedily with
	// backtracking to the last star: linear in practice, never exponential.
	var pat []rune
	for _, p := range s.parts {
		switch p.wild {
		case '*':
			pat = append(pat, -1)
		case '?':
			pat = append(pat, -2)
		default:
			pat = append(pat, []rune(p.lit)...)
		}
	}
	str := []rune(name)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(pat) && (pat[pi] == -2 || pat[pi] == str[si]):
			pi++
			si++
		case pi < len(pat) && pat[pi] == -1:
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pat) && pat[pi] == -1 {
		pi++
	}
	return pi == len(pat)
}

// Selected applies include (empty = everything) and exclude lists.
func Selected(include, exclude []Pattern, schema, table string) bool {
	ok := len(include) == 0
	for _, p := range include {
		if p.Match(schema, table) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, p := range exclude {
		if p.Match(schema, table) {
			return false
		}
	}
	return true
}
