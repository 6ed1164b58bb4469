package plan

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/check"
	"github.com/pgmove/pgmove/internal/config"
	"github.com/pgmove/pgmove/internal/replication"
)

//go:embed templates/*
var templateFiles embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"shell":    shellQuote,
	"comment":  commentText,
	"code":     code,
	"cell":     cell,
	"bytes":    check.PrettyBytes,
	"join":     strings.Join,
	"ident":    func(s string) string { return pgx.Identifier{s}.Sanitize() },
	"lit":      replication.QuoteLiteral,
	"hba":      hbaName,
	"lines":    func(s string) []string { return strings.Split(strings.TrimRight(s, "\n"), "\n") },
	"upper":    strings.ToUpper,
	"stmt":     func(fix string) string { return strings.SplitN(fix, ";", 2)[0] + ";" },
	"fullCost": func() string { return check.FullCost },
}).ParseFS(templateFiles, "templates/*"))

// Input is what a plan is rendered from.
type Input struct {
	M      *config.Migration // its ContextDir must be absolute
	Facts  *Facts
	Pgmove string // the pgmove binary the scripts run
	HTML   bool   // also write runbook.html
}

// File is one file of the context directory.
type File struct {
	Name string
	Mode fs.FileMode
	Data []byte
}

// Names of the files a plan writes, besides the scripts.
const (
	ActivateFile = "activate"
	ConfigFile   = "migration.yml"
	RunbookFile  = "runbook.md"
	HTMLFile     = "runbook.html"
	FactsFile    = "plan.json"
	LogDir       = "log"
)

// Render produces every file of the context directory.
func Render(in Input) ([]File, error) {
	if !filepath.IsAbs(in.M.ContextDir) {
		return nil, fmt.Errorf("plan: context directory %q is not absolute", in.M.ContextDir)
	}
	ctxName := dirName(in.M)
	var files []File
	exec := func(name, tmpl string, data any) error {
		var b bytes.Buffer
		if err := templates.ExecuteTemplate(&b, tmpl, data); err != nil {
			return fmt.Errorf("plan: render %s: %w", name, err)
		}
		files = append(files, File{Name: name, Mode: 0o700, Data: b.Bytes()})
		return nil
	}
	err := exec(ActivateFile, "activate.tmpl", map[string]any{
		"Context": ctxName, "Dir": in.M.ContextDir, "M": in.M, "Pgmove": in.Pgmove,
		"Version": in.Facts.Pgmove, "Written": in.Facts.Written.Format(time.RFC3339),
	})
	if err != nil {
		return nil, err
	}
	for _, s := range ScriptsFor(in.M) {
		if err := exec(s.Name, "script.sh.tmpl", struct {
			Script
			Context string
		}{s, ctxName}); err != nil {
			return nil, err
		}
	}
	files = append(files, File{Name: ConfigFile, Mode: 0o600, Data: ConfigYAML(in.M)})
	md, err := Runbook(in)
	if err != nil {
		return nil, err
	}
	files = append(files, File{Name: RunbookFile, Mode: 0o600, Data: md})
	if in.HTML {
		files = append(files, File{Name: HTMLFile, Mode: 0o600, Data: []byte(HTML(runbookTitle(in.M), string(md)))})
	}
	facts, err := json.MarshalIndent(in.Facts, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	files = append(files, File{Name: FactsFile, Mode: 0o600, Data: append(facts, '\n')})
	return files, nil
}

// Write writes the files into dir (mode 0700, created if needed), each
// through a temporary file so that a crash never leaves half a script. The
// log directory and pgmove's journal in dir are left alone.
func Write(dir string, files []File) error {
	if err := os.MkdirAll(filepath.Join(dir, LogDir), 0o700); err != nil {
		return fmt.Errorf("migration context directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("migration context directory: %w", err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.Name)
		tmp, err := os.CreateTemp(dir, "."+f.Name+".*")
		if err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		_, err = tmp.Write(f.Data)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chmod(tmp.Name(), f.Mode)
		}
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// ReadFacts reads the plan.json of a context directory.
func ReadFacts(dir string) (*Facts, error) {
	b, err := os.ReadFile(filepath.Join(dir, FactsFile))
	if err != nil {
		return nil, err
	}
	var f Facts
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, FactsFile), err)
	}
	if f.Format != FactsFormat {
		return nil, fmt.Errorf("%s: format %d, this pgmove reads %d; rerun pgmove plan", filepath.Join(dir, FactsFile), f.Format, FactsFormat)
	}
	return &f, nil
}

// dirName is the seed's name of the context: <src_cls>.<src_db>.
func dirName(m *config.Migration) string { return filepath.Base(m.ContextDir) }

// shellQuote quotes s for a POSIX shell: single quotes, each ' as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// commentText makes s safe inside a shell comment: a line break in a
// database or cluster name would end the comment and run the rest.
func commentText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

// code renders s as a markdown code span, with a fence longer than any run
// of backticks inside.
func code(s string) string {
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// hbaName quotes a database or role name for pg_hba.conf when needed.
func hbaName(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t,\"#") && s == strings.ToLower(s) && s != "all" && s != "replication" {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// hbaAddress is the ADDRESS field of a pg_hba.conf line admitting host.
func hbaAddress(host string) string {
	if ip := net.ParseIP(host); ip != nil {
		if ip.To4() != nil {
			return ip.String() + "/32"
		}
		return ip.String() + "/128"
	}
	if host == "" || strings.HasPrefix(host, "/") || strings.Contains(host, ",") {
		return "<target-host-ip>/32"
	}
	return host // pg_hba.conf accepts host names
}
