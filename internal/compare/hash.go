package compare

import (
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Column is one column of a compared table.
type Column struct {
	Name      string
	TypeOID   uint32
	Type      string // format_type, e.g. "character(84)"
	Generated bool   // stored generated: computed by the target, never written
	Always    bool   // GENERATED ALWAYS AS IDENTITY: INSERT needs OVERRIDING SYSTEM VALUE
}

// Built-in type OIDs (fixed in pg_type.dat since they were added).
const (
	oidBool        = 16
	oidName        = 19
	oidInt8        = 20
	oidInt2        = 21
	oidInt4        = 23
	oidText        = 25
	oidOID         = 26
	oidBpchar      = 1042
	oidVarchar     = 1043
	oidTime        = 1083
	oidTimestamp   = 1114
	oidTimestamptz = 1184
	oidUUID        = 2950
)

// binaryHash names, for the types whose hash opclass function tells every
// two distinct values apart the way their equality does, the SQL that hashes
// a value without formatting it as text; %s is the column, %d the seed.
// hash_any_extended, under all of them, is stable across majors: hash
// partitioning and pg_upgrade rely on it. Left out on purpose, hashed as
// text: float (the hash makes 0 and -0 equal), numeric and jsonb (1.0 and
// 1.00 hash equal), interval ('1 day' and '24 hours' hash equal), date (no
// hash function of its own), arrays, ranges, bytea and everything else.
var binaryHash = map[uint32]string{
	oidBool:        "pg_catalog.hashint4extended(%s::int4, %d)",
	oidInt2:        "pg_catalog.hashint2extended(%s, %d)",
	oidInt4:        "pg_catalog.hashint4extended(%s, %d)",
	oidInt8:        "pg_catalog.hashint8extended(%s, %d)",
	oidOID:         "pg_catalog.hashoidextended(%s, %d)",
	oidName:        `pg_catalog.hashnameextended(%s COLLATE "C", %d)`,
	oidText:        `pg_catalog.hashtextextended(%s COLLATE "C", %d)`,
	oidVarchar:     `pg_catalog.hashtextextended(%s::text COLLATE "C", %d)`,
	oidBpchar:      `pg_catalog.hashbpcharextended(%s COLLATE "C", %d)`,
	oidUUID:        "pg_catalog.uuid_hash_extended(%s, %d)",
	oidTime:        "pg_catalog.time_hash_extended(%s, %d)",
	oidTimestamp:   "pg_catalog.timestamp_hash_extended(%s, %d)",
	oidTimestamptz: "pg_catalog.timestamp_hash_extended(%s::timestamp, %d)", // exact: TimeZone is pinned to UTC
}

// rowHash is the SQL of one row's 64-bit hash: each column hashed with its
// own seed (so that swapping two columns' values changes it), NULL a
// constant of its own per column, the columns folded with XOR. A column
// whose type differs between the sides, or has no exact binary hash, is
// hashed from its text, which the pinned session settings make the same on
// every major.
func rowHash(src, dst []Column) string {
	if len(src) == 0 {
		return "0::int8"
	}
	dt := map[string]uint32{}
	for _, c := range dst {
		dt[c.Name] = c.TypeOID
	}
	parts := make([]string, len(src))
	for i, c := range src {
		col := "t." + pgx.Identifier{c.Name}.Sanitize()
		seed := int64(i + 1)
		f, ok := binaryHash[c.TypeOID]
		if !ok || dt[c.Name] != c.TypeOID {
			f = `pg_catalog.hashtextextended(%s::text COLLATE "C", %d)`
		}
		// The NULL constant: the hash of a string no column renders to.
		parts[i] = fmt.Sprintf("COALESCE("+f+", pg_catalog.hashtextextended('pgmove:null', %d))", col, seed, seed)
	}
	return "(" + strings.Join(parts, " # ") + ")"
}
