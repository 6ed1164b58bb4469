package progress

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/catalog"
	"github.com/pgmove/pgmove/internal/cluster"
)

// A slot that falls behind keeps WAL on the source until its disk is full,
// the worst outcome a migration can have; with max_slot_wal_keep_size set,
// the source removes that WAL instead and the slot is lost, and the
// migration must start again. This file watches both.

//go:embed sql/*.sql
var sqlFiles embed.FS

func query(name string) string {
	b, err := sqlFiles.ReadFile("sql/" + name + ".sql")
	if err != nil {
		panic("progress: missing embedded query " + name)
	}
	return string(b)
}

// DefaultRetainedFactor: without max_slot_wal_keep_size, pgmove warns once
// the slot holds this many times max_wal_size (a healthy server keeps about
// max_wal_size of WAL; a slot holding several times that is not keeping up,
// and nothing stops it before the disk is full).
const DefaultRetainedFactor = 4

// RetainedThreshold is the retained WAL past which progress warns: limit
// is max_slot_wal_keep_size in bytes (-1 no limit, nil unknown), maxWAL
// max_wal_size. With a limit, half of it: the slot has used half of what
// it may hold before it is lost.
func RetainedThreshold(limit *int64, maxWAL int64) int64 {
	if limit != nil && *limit >= 0 {
		return *limit / 2
	}
	if maxWAL <= 0 {
		maxWAL = 1 << 30 // PostgreSQL's default max_wal_size
	}
	return DefaultRetainedFactor * maxWAL
}

// disk reads what the migration's slot holds on the source's disk and
// turns it into warnings and problems. r.RetainedWAL is already read.
func (s *Sampler) disk(ctx context.Context, r *Report) error {
	q := query("slot_disk")
	if s.Src.VersionNum < 130000 { // wal_status, safe_wal_size, max_slot_wal_keep_size: 13
		q = query("slot_disk_pg10")
	}
	var status *string
	var safe, limit *int64
	var maxWAL int64
	err := s.Src.QueryRow(ctx, q, s.M.SlotName).Scan(&status, &safe, &limit, &maxWAL)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return s.Src.Wrap("read the slot's retained WAL", err)
	}
	r.WALStatus, r.SafeWAL, r.WALKeepLimit = status, safe, limit
	threshold := s.MaxRetained
	if threshold <= 0 {
		threshold = RetainedThreshold(limit, maxWAL)
	}
	r.MaxRetained = ptr(threshold)
	slot := catalog.QuoteName(s.M.SlotName)
	limitText := "max_slot_wal_keep_size"
	if limit != nil {
		limitText += " = " + bytes(*limit)
	}
	switch deref(status) {
	case "lost":
		r.SlotLost = true
		r.Problems = append([]string{fmt.Sprintf("replication slot %s on the source is lost (wal_status lost): the source removed WAL the target had not received, past %s; this subscription can never catch up: start a new copy: pgmove cleanup, then pgmove migrate", slot, limitText)}, r.Problems...)
		return nil
	case "unreserved":
		r.SlotLost = true
		r.Problems = append([]string{fmt.Sprintf("replication slot %s on the source is past %s (wal_status unreserved): the next checkpoint removes WAL the target has not received and the slot is lost; unless the target catches up at once, start a new copy: pgmove cleanup, then pgmove migrate", slot, limitText)}, r.Problems...)
		return nil
	}
	if r.RetainedWAL != nil && *r.RetainedWAL > threshold {
		w := fmt.Sprintf("replication slot %s holds %s of WAL on the source, past --max-retained %s", slot, bytes(*r.RetainedWAL), bytes(threshold))
		switch {
		case safe != nil:
			w += fmt.Sprintf("; %s more and it is lost (safe_wal_size): then the migration must start again", bytes(max(*safe, 0)))
		default:
			w += "; max_slot_wal_keep_size is -1 (no limit): the slot keeps WAL until the source's disk is full; watch the disk of pg_wal, or start over (pgmove cleanup) if the target cannot catch up"
		}
		r.Warnings = append(r.Warnings, w)
	}
	return nil
}

// Slot is a replication slot pgmove made, or one named as pgmove names
// them, in the current database of one side. What a server cannot tell is
// nil: null in JSON, "unknown" in the text.
type Slot struct {
	Name string `json:"name"`
	Side string `json:"side"`
	// Role is "migration" (this migration's slot), "way back" (the
	// target's slot of the switchover's reverse replication) or "other"
	// (pgmove's naming, another or an older migration).
	Role      string  `json:"role"`
	Active    bool    `json:"active"`
	WALStatus *string `json:"wal_status"` // 13+
	Retained  *int64  `json:"retained_bytes"`
	SafeWAL   *int64  `json:"safe_wal_bytes"` // null without max_slot_wal_keep_size, or before 13
	XminAge   *int64  `json:"catalog_xmin_age"`
	// Since is when the step that made the slot started, from this
	// migration's journal (the slot is at most AgeSeconds old; nil for a
	// slot the journal does not know); InactiveSince is the server's (17+).
	Since         *time.Time `json:"created"`
	AgeSeconds    *float64   `json:"age_seconds"`
	InactiveSince *time.Time `json:"inactive_since"`
	Drop          string     `json:"drop"` // the statement that drops it
}

// IsPgmoveSlot reports whether a slot's name is one pgmove gives: the
// seed's sub_<cluster>_<database>, or a way back's ..._reverse.
func IsPgmoveSlot(name string) bool {
	return strings.HasPrefix(name, "sub_") || strings.HasSuffix(name, "_reverse")
}

// Slots lists c's logical slots of its current database that are
// pgmove's: this migration's (mine), and those of pgmove's naming. role
// names each.
func Slots(ctx context.Context, c *cluster.Conn, mine map[string]string) ([]Slot, error) {
	q := query("slots")
	switch {
	case c.VersionNum < 130000: // wal_status, safe_wal_size: 13
		q = query("slots_pg10")
	case c.VersionNum < 170000: // inactive_since: 17
		q = strings.ReplaceAll(q, "{{inactive_since}}", "NULL::timestamptz")
	default:
		q = strings.ReplaceAll(q, "{{inactive_since}}", "s.inactive_since")
	}
	rows, err := c.Query(ctx, q)
	if err != nil {
		return nil, c.Wrap("list replication slots", err)
	}
	all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Slot, error) {
		var sl Slot
		err := row.Scan(&sl.Name, &sl.Active, &sl.Retained, &sl.WALStatus, &sl.SafeWAL, &sl.XminAge, &sl.InactiveSince)
		return sl, err
	})
	if err != nil {
		return nil, c.Wrap("list replication slots", err)
	}
	var out []Slot
	for _, sl := range all {
		role, ok := mine[sl.Name]
		if !ok && !IsPgmoveSlot(sl.Name) {
			continue
		}
		if !ok {
			role = "other"
		}
		sl.Role, sl.Side = role, string(c.Side)
		sl.Drop = fmt.Sprintf("SELECT pg_catalog.pg_drop_replication_slot(%s);", quoteLiteral(sl.Name))
		out = append(out, sl)
	}
	return out, nil
}

// Problem is what a slot costs, when it is a danger on its own: lost, past
// its limit, or another migration's slot left inactive.
func (sl Slot) Problem() string {
	name := catalog.QuoteName(sl.Name)
	switch deref(sl.WALStatus) {
	case "lost":
		return fmt.Sprintf("replication slot %s on the %s is lost (wal_status lost): the migration that uses it can never catch up: start a new copy (pgmove cleanup, then pgmove migrate)", name, sl.Side)
	case "unreserved":
		return fmt.Sprintf("replication slot %s on the %s is past max_slot_wal_keep_size (wal_status unreserved): the next checkpoint loses it; unless its subscriber catches up at once, start a new copy (pgmove cleanup, then pgmove migrate)", name, sl.Side)
	}
	return ""
}

// Text is the slot's line in status.
func (sl Slot) Text() string {
	parts := []string{fmt.Sprintf("%s slot %s (%s)", sl.Side, catalog.QuoteName(sl.Name), sl.Role)}
	if sl.Active {
		parts = append(parts, "active")
	} else {
		parts = append(parts, "inactive")
	}
	parts = append(parts, "wal_status "+orUnknown(deref(sl.WALStatus)))
	retained := "unknown"
	if sl.Retained != nil {
		retained = bytes(*sl.Retained)
	}
	parts = append(parts, "retains "+retained)
	if sl.SafeWAL != nil {
		parts = append(parts, "lost after "+bytes(max(*sl.SafeWAL, 0))+" more")
	}
	age := "age unknown"
	if sl.AgeSeconds != nil {
		age = "made at most " + seconds(*sl.AgeSeconds) + " ago (journal)"
	}
	parts = append(parts, age)
	if sl.InactiveSince != nil {
		parts = append(parts, "inactive since "+sl.InactiveSince.UTC().Format(time.DateTime)+" UTC")
	}
	if sl.XminAge != nil {
		parts = append(parts, fmt.Sprintf("catalog_xmin %d transactions old", *sl.XminAge))
	}
	if sl.Role == "other" && !sl.Active {
		parts = append(parts, "if no migration uses it, drop it there: "+sl.Drop)
	}
	return strings.Join(parts, ", ")
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// DiskText is the report's line about the source's disk.
func (r *Report) DiskText() string {
	retained := "unknown"
	if r.RetainedWAL != nil {
		retained = bytes(*r.RetainedWAL)
	}
	parts := []string{"source disk: slot retains " + retained, "wal_status " + orUnknown(deref(r.WALStatus))}
	switch {
	case r.WALKeepLimit == nil:
		parts = append(parts, "max_slot_wal_keep_size unknown")
	case *r.WALKeepLimit < 0:
		parts = append(parts, "max_slot_wal_keep_size -1 (no limit: the slot can fill the disk)")
	default:
		parts = append(parts, "max_slot_wal_keep_size "+bytes(*r.WALKeepLimit)+" (past it the slot is lost)")
	}
	if r.SafeWAL != nil {
		parts = append(parts, "lost after "+bytes(max(*r.SafeWAL, 0))+" more WAL")
	}
	if r.MaxRetained != nil {
		parts = append(parts, "warning past "+bytes(*r.MaxRetained))
	}
	return strings.Join(parts, ", ")
}
