package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/pgserver"
)

var (
	//go:embed sql/tables.sql
	tablesSQL string
	//go:embed sql/indexes.sql
	indexesSQL string
	//go:embed sql/size.sql
	sizeSQL string
	//go:embed sql/checksum.sql
	checksumSQL string
)

// dataset is one source database and what bench measured on it.
type dataset struct {
	datasetResult
	src     stats    // the source's contents, read once: it does not change
	targets []target // the runs' target databases, dropped when the dataset is done
}

// target is one run's target database.
type target struct {
	server *pgserver.Server
	db     string
}

// datasetResult is a dataset's part of the results.
type datasetResult struct {
	Name         string         `json:"name"`
	Description  string         `json:"description"`
	Database     string         `json:"database"`
	Tables       int            `json:"tables"`
	Rows         int64          `json:"rows"`
	Indexes      int            `json:"indexes"`
	Bytes        int64          `json:"bytes"` // sum of pg_table_size of the user tables
	MB           float64        `json:"mb"`    // Bytes in MB of 2^20 bytes, as pg_size_pretty counts
	BuildSeconds float64        `json:"build_seconds"`
	Runs         []runResult    `json:"runs"`
	Targets      []targetResult `json:"targets"`
}

// build creates the dataset's database on the source and measures it.
func (b *bench) build(ctx context.Context, name string) (*dataset, error) {
	ds := &dataset{datasetResult: datasetResult{Name: name, Database: "bench_" + strings.ReplaceAll(name, "-", "_")}}
	tables, rows := b.o.tables, b.o.rows
	switch name {
	case dataGrowthSmall:
		tables, rows = b.o.growthTables, b.o.growthRows
	case dataGrowthLarge:
		tables, rows = b.o.growthTables*growthFactor, b.o.growthRows
	}
	switch name {
	case dataPgbench:
		ds.Description = fmt.Sprintf("pgbench scale %d", b.o.scale)
	default:
		ds.Description = fmt.Sprintf("%d tables of %d rows, each with a primary key and one more index", tables, rows)
	}
	b.progress("%s: building %s in source database %s", name, ds.Description, ds.Database)
	start := time.Now()
	if err := freshDatabase(ctx, ds.Database, b.src); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	var err error
	switch name {
	case dataPgbench:
		err = b.buildPgbench(ctx, ds.Database)
	default:
		err = b.buildTables(ctx, ds.Database, tables, rows)
	}
	if err != nil {
		return nil, fmt.Errorf("source: build dataset %s: %w", name, err)
	}
	ds.BuildSeconds = time.Since(start).Seconds()

	conn, err := connect(ctx, b.src, ds.Database)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, sizeSQL).Scan(&ds.Bytes); err != nil {
		return nil, fmt.Errorf("source: data size: %w", err)
	}
	ds.MB = float64(ds.Bytes) / (1 << 20)
	if ds.src, err = readStats(ctx, conn, name == dataPgbench); err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	ds.Tables, ds.Rows, ds.Indexes = len(ds.src.tables), ds.src.total, len(ds.src.indexes)
	b.progress("%s: %d tables, %d rows, %d indexes, %.1f MB of table data, built in %.1f s",
		name, ds.Tables, ds.Rows, ds.Indexes, ds.MB, ds.BuildSeconds)
	return ds, nil
}

// buildPgbench runs pgbench -i. pgbench_history has no key, so it gets
// REPLICA IDENTITY FULL, the fix pgmove check names; every tool gets the same
// tables.
func (b *bench) buildPgbench(ctx context.Context, db string) error {
	logPath := filepath.Join(b.logDir, "build-pgbench.log")
	log, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, b.pgbench, "-i", "-s", strconv.Itoa(b.o.scale), "-q",
		"-h", b.src.Host, "-p", strconv.Itoa(b.src.Port), "-U", b.src.Superuser, db)
	cmd.Env = b.childEnv(b.work)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s -i: %w (log: %s): %s", b.pgbench, err, logPath, lastLine(logPath))
	}
	return execIn(ctx, b.src, db, "ALTER TABLE "+pgx.Identifier{"public", "pgbench_history"}.Sanitize()+" REPLICA IDENTITY FULL")
}

// tablesPerBatch bounds the locks one transaction of buildTables takes
// (a table, its TOAST table and four indexes each).
const tablesPerBatch = 25

// buildTables creates t0001..tNNNN, each (id bigint primary key, a int,
// b text, c timestamptz) with an index on a and rows of about 250 bytes, in
// batches over two connections, then vacuums them.
func (b *bench) buildTables(ctx context.Context, db string, tables, rows int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan [2]int)
	go func() {
		defer close(batches)
		for first := 1; first <= tables; first += tablesPerBatch {
			select {
			case batches <- [2]int{first, min(first+tablesPerBatch-1, tables)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for w := range errs {
		wg.Go(func() {
			errs[w] = b.fillTables(ctx, db, rows, batches)
			if errs[w] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Vacuumed as pgbench -i vacuums its tables: otherwise autovacuum works
	// through 2,000 new tables on the source during the first tool's run.
	return execIn(ctx, b.src, db, "VACUUM (ANALYZE)")
}

// fillTables creates the batches of tables it receives, on one connection.
func (b *bench) fillTables(ctx context.Context, db string, rows int, batches <-chan [2]int) error {
	conn, err := connect(ctx, b.src, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	for batch := range batches {
		var sql strings.Builder
		for n := batch[0]; n <= batch[1]; n++ {
			sql.WriteString(tableDDL(n, rows))
		}
		// No arguments: the simple protocol, one round trip and one
		// implicit transaction for the whole batch.
		if _, err := conn.Exec(ctx, sql.String()); err != nil {
			return fmt.Errorf("tables t%04d..t%04d: %w", batch[0], batch[1], err)
		}
	}
	return nil
}

// tableDDL creates and fills table number n.
func tableDDL(n, rows int) string {
	name := fmt.Sprintf("t%04d", n)
	t := pgx.Identifier{"public", name}.Sanitize()
	idx := pgx.Identifier{name + "_a_idx"}.Sanitize()
	// b is 192 characters of hex, so a row is about 250 bytes on disk.
	return fmt.Sprintf(`CREATE TABLE %[1]s (id bigint PRIMARY KEY, a integer NOT NULL, b text NOT NULL, c timestamptz NOT NULL);
INSERT INTO %[1]s (id, a, b, c)
SELECT i, (i * 7919) %% 1000, repeat(md5(i::text || '.' || %[3]d), 6), timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, %[4]d) AS i;
CREATE INDEX %[2]s ON %[1]s (a);
`, t, idx, n, rows)
}

// stats is what bench compares between the source and a target.
type stats struct {
	tables   map[string]int64 // quoted schema.table -> rows
	total    int64
	indexes  []string // schema.table.index of the valid indexes
	checksum *int64   // of pgbench_accounts, when asked for
}

// readStats counts the rows of every user table (a round trip per 500), lists the
// valid indexes and, when asked, checksums pgbench_accounts.
func readStats(ctx context.Context, conn *pgx.Conn, checksum bool) (stats, error) {
	st := stats{tables: map[string]int64{}}
	rows, err := conn.Query(ctx, tablesSQL)
	if err != nil {
		return st, fmt.Errorf("list tables: %w", err)
	}
	var names []string
	for rows.Next() {
		var schema, table string
		if err := rows.Scan(&schema, &table); err != nil {
			return st, fmt.Errorf("list tables: %w", err)
		}
		names = append(names, pgx.Identifier{schema, table}.Sanitize())
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("list tables: %w", err)
	}
	// In batches: one batch is one implicit transaction, which holds the
	// locks of every table it counted (and of their indexes) to its end.
	const perBatch = 500
	for first := 0; first < len(names); first += perBatch {
		part := names[first:min(first+perBatch, len(names))]
		batch := &pgx.Batch{}
		for _, n := range part {
			batch.Queue("SELECT count(*) FROM " + n)
		}
		br := conn.SendBatch(ctx, batch)
		for _, n := range part {
			var c int64
			if err := br.QueryRow().Scan(&c); err != nil {
				br.Close()
				return st, fmt.Errorf("count rows of %s: %w", n, err)
			}
			st.tables[n] = c
			st.total += c
		}
		if err := br.Close(); err != nil {
			return st, fmt.Errorf("count rows: %w", err)
		}
	}
	rows, err = conn.Query(ctx, indexesSQL)
	if err != nil {
		return st, fmt.Errorf("list indexes: %w", err)
	}
	if st.indexes, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return st, fmt.Errorf("list indexes: %w", err)
	}
	if checksum {
		var sum int64
		if err := conn.QueryRow(ctx, checksumSQL).Scan(&sum); err != nil {
			return st, fmt.Errorf("checksum pgbench_accounts: %w", err)
		}
		st.checksum = &sum
	}
	return st, nil
}

// equal compares a target's stats with the source's and says how in a few
// words: "equal: ..." or what differs first.
func (src stats) equal(dst stats) (bool, string) {
	var diffs []string
	names := make([]string, 0, len(src.tables))
	for n := range src.tables {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		d, ok := dst.tables[n]
		switch {
		case !ok:
			diffs = append(diffs, n+" missing")
		case d != src.tables[n]:
			diffs = append(diffs, fmt.Sprintf("%s has %d rows, source %d", n, d, src.tables[n]))
		}
	}
	have := make(map[string]bool, len(dst.indexes))
	for _, ix := range dst.indexes {
		have[ix] = true
	}
	for _, ix := range src.indexes {
		if !have[ix] {
			diffs = append(diffs, "index "+ix+" missing or invalid")
		}
	}
	if src.checksum != nil && (dst.checksum == nil || *dst.checksum != *src.checksum) {
		diffs = append(diffs, "pgbench_accounts checksum differs")
	}
	if len(diffs) > 0 {
		more := ""
		if len(diffs) > 3 {
			more = fmt.Sprintf(" (and %d more)", len(diffs)-3)
			diffs = diffs[:3]
		}
		return false, "DIFFERS: " + strings.Join(diffs, "; ") + more
	}
	note := fmt.Sprintf("equal: %d tables, %d rows, %d indexes", len(src.tables), src.total, len(src.indexes))
	if src.checksum != nil {
		note += ", pgbench_accounts checksum"
	}
	return true, note
}
