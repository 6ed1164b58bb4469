package web

import (
	"encoding/json"
	"os"
	"regexp"
	"testing"
)

// The Grafana dashboard's structure, as Grafana imports it: a schema
// version, a datasource variable every panel and query variable reads
// through (no datasource UID of one installation), panels with unique ids,
// a type, a title and a place on the 24-column grid that overlaps no other,
// queries with unique refIds whose variables are all defined.
func TestDashboardStructure(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/pgmove.json")
	if err != nil {
		t.Fatal(err)
	}
	type source struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	var d struct {
		Title         string `json:"title"`
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name       string  `json:"name"`
				Type       string  `json:"type"`
				Query      any     `json:"query"`
				Datasource *source `json:"datasource"`
				Definition string  `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int     `json:"id"`
			Type       string  `json:"type"`
			Title      string  `json:"title"`
			Datasource *source `json:"datasource"`
			GridPos    *struct {
				X, Y, W, H int
			} `json:"gridPos"`
			Targets []struct {
				RefID      string  `json:"refId"`
				Expr       string  `json:"expr"`
				Datasource *source `json:"datasource"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("deploy/grafana/pgmove.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 {
		t.Errorf("title %q, uid %q, schemaVersion %d: want both, and a schema of Grafana 8 or later", d.Title, d.UID, d.SchemaVersion)
	}
	viaVariable := func(what string, s *source) {
		if s == nil || s.Type != "prometheus" || s.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want prometheus through ${datasource}", what, s)
		}
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		if vars[v.Name] {
			t.Errorf("variable %q defined twice", v.Name)
		}
		vars[v.Name] = true
		switch v.Type {
		case "datasource":
			if v.Query != "prometheus" {
				t.Errorf("variable %q: a datasource of type %v, want prometheus", v.Name, v.Query)
			}
		case "query":
			viaVariable("variable "+v.Name, v.Datasource)
			if v.Definition == "" {
				t.Errorf("variable %q has no query", v.Name)
			}
		default:
			t.Errorf("variable %q of type %q", v.Name, v.Type)
		}
	}
	if !vars["datasource"] {
		t.Error("no datasource variable: the dashboard would be bound to one installation's datasource")
	}
	ref := regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)`)
	used := func(what, q string) {
		for _, m := range ref.FindAllStringSubmatch(q, -1) {
			if name := m[1] + m[2]; !vars[name] {
				t.Errorf("%s uses $%s, which no variable defines", what, name)
			}
		}
	}
	for _, v := range d.Templating.List {
		used("variable "+v.Name, v.Definition)
	}
	if len(d.Panels) == 0 {
		t.Fatal("no panels")
	}
	ids := map[int]string{}
	type cell struct{ x, y int }
	taken := map[cell]string{}
	types := map[string]bool{"stat": true, "timeseries": true, "gauge": true, "table": true, "bargauge": true, "text": true}
	for _, p := range d.Panels {
		if p.ID <= 0 || ids[p.ID] != "" {
			t.Errorf("panel %q: id %d, taken by %q or not positive", p.Title, p.ID, ids[p.ID])
		}
		ids[p.ID] = p.Title
		if p.Title == "" || !types[p.Type] {
			t.Errorf("panel %d: title %q, type %q", p.ID, p.Title, p.Type)
		}
		viaVariable("panel "+p.Title, p.Datasource)
		g := p.GridPos
		if g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v, want w, h >= 1 within 24 columns", p.Title, g)
			continue
		}
		overlaps := map[string]bool{}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other := taken[cell{x, y}]; other != "" && !overlaps[other] {
					overlaps[other] = true
					t.Errorf("panel %q overlaps %q at (%d, %d)", p.Title, other, x, y)
				}
				taken[cell{x, y}] = p.Title
			}
		}
		refs := map[string]bool{}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] || tg.Expr == "" {
				t.Errorf("panel %q: target %q (refId empty or twice) with expr %q", p.Title, tg.RefID, tg.Expr)
			}
			refs[tg.RefID] = true
			viaVariable("panel "+p.Title+" target "+tg.RefID, tg.Datasource)
			used("panel "+p.Title, tg.Expr)
		}
	}
}
