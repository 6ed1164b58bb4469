package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// IdentityRow is one table of the seed's check-replica-identity report.
type IdentityRow struct {
	Table    *catalog.Table `json:"-"`
	Name     string         `json:"table"`
	Keys     string         `json:"keys"` // "primary key", "unique index x", "none"
	Bytes    int64          `json:"bytes"`
	Identity string         `json:"identity"` // default, nothing, full, index
	OK       bool           `json:"ok"`
	Fix      string         `json:"fix,omitempty"`
}

var identityNames = map[byte]string{'d': "default", 'n': "nothing", 'f': "full", 'i': "index"}

// Identities reports, for every table that holds published rows (plain
// tables, partitions and their roots), whether UPDATE and DELETE can be
// replicated, and the statement that fixes those that cannot: USING INDEX
// on a unique, valid, immediate, non-partial index over NOT NULL columns when
// one exists, FULL otherwise.
func Identities(ctx context.Context, src *cluster.Conn, snap *catalog.Snapshot, published []*catalog.Table) ([]IdentityRow, error) {
	tables := append([]*catalog.Table{}, published...)
	seen := map[uint32]bool{}
	for _, t := range published {
		seen[t.OID] = true
	}
	for _, t := range snap.Leaves(published) {
		if !seen[t.OID] {
			tables = append(tables, t)
			seen[t.OID] = true
		}
	}
	var lacking []uint32
	for _, t := range tables {
		if !t.HasIdentity() || !t.HasPK {
			lacking = append(lacking, t.OID)
		}
	}
	cands, err := catalog.IdentityCandidates(ctx, src, lacking)
	if err != nil {
		return nil, err
	}
	rows := make([]IdentityRow, 0, len(tables))
	for _, t := range tables {
		row := IdentityRow{Table: t, Name: t.String(), Bytes: t.Bytes, Identity: identityNames[t.ReplIdent], OK: t.HasIdentity()}
		switch {
		case t.HasPK:
			row.Keys = "primary key"
		case len(cands[t.OID]) > 0:
			row.Keys = "unique index " + catalog.QuoteName(cands[t.OID][0].Index)
		default:
			row.Keys = "none"
		}
		if t.ReplIdent == 'i' {
			row.Identity = "index " + catalog.QuoteName(t.IdentIndex)
		}
		if !row.OK {
			row.Fix = IdentityFix(t, cands[t.OID])
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// IdentityFix is the statement that gives a table a replica identity.
func IdentityFix(t *catalog.Table, cands []catalog.IdentityCandidate) string {
	if len(cands) > 0 {
		return fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY USING INDEX %s;", t.Ident(), pgx.Identifier{cands[0].Index}.Sanitize())
	}
	return fmt.Sprintf("ALTER TABLE %s REPLICA IDENTITY FULL;  -- %s; or better, add a primary key", t.Ident(), PrettyBytes(t.Bytes))
}

// FullCost explains what REPLICA IDENTITY FULL costs.
const FullCost = "FULL writes the whole old row to the source's WAL for every UPDATE and DELETE, and the target finds each changed row by a sequential scan unless it has a usable index (PostgreSQL 16+ uses a btree index)"

func (c *checker) replicaIdentity(ctx context.Context) error {
	if c.src == nil || c.snap == nil {
		return nil
	}
	rows, err := Identities(ctx, c.src, c.snap, c.r.Published)
	if err != nil {
		return err
	}
	for _, row := range rows {
		t := row.Table
		switch {
		case !row.OK:
			msg := "no primary key and no usable replica identity: once published, UPDATE and DELETE on it fail on the source"
			if t.ReplIdent == 'n' {
				msg = "replica identity NOTHING: once published, UPDATE and DELETE on it fail on the source"
			}
			c.r.add(Error, "source", "replica_identity", t.String(), msg, row.Fix)
			if strings.Contains(row.Fix, " FULL;") {
				c.r.Findings[len(c.r.Findings)-1].Detail = "no unique index over NOT NULL columns can serve instead, so the fix is FULL: " + FullCost
			}
		case t.ReplIdent == 'f' && !t.HasPK:
			c.r.add(Info, "source", "replica_identity", t.String(), "replica identity FULL: "+FullCost, "")
		}
	}
	return nil
}

// PrettyBytes formats a size like pg_size_pretty.
func PrettyBytes(n int64) string {
	const unit = 1024
	if n < 10*unit {
		return fmt.Sprintf("%d bytes", n)
	}
	f := float64(n)
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f /= unit
		if f < 10*unit || u == "TB" {
			return fmt.Sprintf("%.0f %s", f, u)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}
