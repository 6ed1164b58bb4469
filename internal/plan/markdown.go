package plan

import (
	"bytes"
	"html"
	"regexp"
	"strings"
)

// HTML renders the runbook's markdown as one self-contained page (inline
// CSS, no script, nothing fetched) for a change ticket.
func HTML(title, md string) string {
	var b bytes.Buffer
	err := templates.ExecuteTemplate(&b, "page.html.tmpl", map[string]string{
		"Title": html.EscapeString(title),
		"Body":  Markdown(md),
	})
	if err != nil {
		panic("plan: page template: " + err.Error()) // the template is embedded: a bug, not an input error
	}
	return b.String()
}

// Markdown renders the subset of markdown the runbook uses: ATX headings,
// paragraphs, flat bullet lists with task checkboxes, flat numbered lists
// (numbered in the order written), fenced code blocks,
// pipe tables, and inline code spans, **bold** and [links](#anchor). It is
// not a general markdown renderer.
func Markdown(md string) string {
	var b strings.Builder
	lines := strings.Split(strings.ReplaceAll(md, "\r\n", "\n"), "\n")
	var para []string
	list := "" // the open list's tag: ul, ol or none
	flush := func() {
		if len(para) > 0 {
			b.WriteString("<p>" + inline(strings.Join(para, "\n")) + "</p>\n")
			para = nil
		}
	}
	closeList := func() {
		if list != "" {
			b.WriteString("</" + list + ">\n")
			list = ""
		}
	}
	openList := func(tag string) {
		if list != tag {
			closeList()
			b.WriteString("<" + tag + ">\n")
			list = tag
		}
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, "```"):
			flush()
			closeList()
			lang := strings.TrimSpace(strings.TrimPrefix(line, "```"))
			var body []string
			for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
				body = append(body, lines[i])
			}
			class := ""
			if lang != "" {
				class = ` class="language-` + html.EscapeString(lang) + `"`
			}
			b.WriteString("<pre><code" + class + ">" + html.EscapeString(strings.Join(body, "\n")) + "</code></pre>\n")
		case strings.TrimSpace(line) == "":
			flush()
			closeList()
		case headingLevel(line) > 0:
			flush()
			closeList()
			n := headingLevel(line)
			text := strings.TrimSpace(line[n+1:])
			tag := "h" + string(rune('0'+n))
			b.WriteString("<" + tag + ` id="` + slug(text) + `">` + inline(text) + "</" + tag + ">\n")
		case strings.HasPrefix(line, "|"):
			flush()
			closeList()
			var rows []string
			for ; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
				rows = append(rows, lines[i])
			}
			i--
			b.WriteString(table(rows))
		case numbered(line) > 0:
			flush()
			openList("ol")
			b.WriteString("<li>" + inline(line[numbered(line):]) + "</li>\n")
		case strings.HasPrefix(line, "- "):
			flush()
			openList("ul")
			item := line[2:]
			switch {
			case strings.HasPrefix(item, "[ ] "):
				b.WriteString(`<li class="task"><input type="checkbox" disabled> ` + inline(item[4:]) + "</li>\n")
			case strings.HasPrefix(item, "[x] "), strings.HasPrefix(item, "[X] "):
				b.WriteString(`<li class="task"><input type="checkbox" checked disabled> ` + inline(item[4:]) + "</li>\n")
			default:
				b.WriteString("<li>" + inline(item) + "</li>\n")
			}
		default:
			closeList()
			para = append(para, line)
		}
	}
	flush()
	closeList()
	return b.String()
}

// numbered returns the length of a numbered list item's marker ("12. "),
// or 0.
func numbered(line string) int {
	n := 0
	for n < len(line) && line[n] >= '0' && line[n] <= '9' {
		n++
	}
	if n == 0 || n > 3 || !strings.HasPrefix(line[n:], ". ") {
		return 0
	}
	return n + 2
}

func headingLevel(line string) int {
	n := 0
	for n < len(line) && line[n] == '#' {
		n++
	}
	if n == 0 || n > 6 || n >= len(line) || line[n] != ' ' {
		return 0
	}
	return n
}

// slug is the anchor of a heading, as GitHub makes it: lower case, spaces as
// dashes, punctuation dropped.
func slug(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

var tableSep = regexp.MustCompile(`^\|[-:| ]+\|$`)

func table(rows []string) string {
	var b strings.Builder
	b.WriteString("<table>\n")
	for i, row := range rows {
		if i == 1 && tableSep.MatchString(row) {
			continue
		}
		tag := "td"
		if i == 0 {
			tag = "th"
			b.WriteString("<thead>\n")
		}
		b.WriteString("<tr>")
		for _, c := range cells(row) {
			b.WriteString("<" + tag + ">" + inline(c) + "</" + tag + ">")
		}
		b.WriteString("</tr>\n")
		if i == 0 {
			b.WriteString("</thead>\n<tbody>\n")
		}
	}
	b.WriteString("</tbody>\n</table>\n")
	return b.String()
}

// cells splits a table row on the pipes that are not escaped as \|.
func cells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	if strings.HasSuffix(row, "|") && !strings.HasSuffix(row, `\|`) {
		row = row[:len(row)-1]
	}
	var out []string
	var cur strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row) && row[i+1] == '|':
			cur.WriteByte('|')
			i++
		case row[i] == '|':
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(row[i])
		}
	}
	return append(out, strings.TrimSpace(cur.String()))
}

var (
	boldRE = regexp.MustCompile(`\*\*(.+?)\*\*`)
	linkRE = regexp.MustCompile(`\[([^\]]+)\]\(([^)\s]+)\)`)
)

// inline renders code spans, then bold and links in the text between them.
func inline(s string) string {
	var b strings.Builder
	for len(s) > 0 {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			b.WriteString(text(s))
			break
		}
		b.WriteString(text(s[:i]))
		n := run(s[i:])
		fence := s[i : i+n]
		end := closing(s[i+n:], n)
		if end < 0 {
			b.WriteString(html.EscapeString(fence))
			s = s[i+n:]
			continue
		}
		content := s[i+n : i+n+end]
		if len(content) > 2 && content[0] == ' ' && content[len(content)-1] == ' ' && strings.Trim(content, " ") != "" {
			content = content[1 : len(content)-1]
		}
		b.WriteString("<code>" + html.EscapeString(content) + "</code>")
		s = s[i+n+end+n:]
	}
	return b.String()
}

// run is the length of the run of backticks s starts with.
func run(s string) int {
	n := 0
	for n < len(s) && s[n] == '`' {
		n++
	}
	return n
}

// closing finds a run of exactly n backticks in s.
func closing(s string, n int) int {
	for i := 0; i < len(s); {
		if s[i] != '`' {
			i++
			continue
		}
		r := run(s[i:])
		if r == n {
			return i
		}
		i += r
	}
	return -1
}

func text(s string) string {
	s = html.EscapeString(s)
	s = boldRE.ReplaceAllString(s, "<strong>$1</strong>")
	return linkRE.ReplaceAllString(s, `<a href="$2">$1</a>`)
}
