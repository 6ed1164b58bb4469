package main

import (
	"context"
	"fmt"
)

// wantGrowth is issue 18's bound: ten times the tables in at most this
// many times the time.
const wantGrowth = 11.0

// runGrowth builds the two growth datasets (-growth-tables tables and ten
// times as many, -growth-rows rows each) and times pgmove on them in turns,
// small then large, round after round, so that the machine's drift falls on
// both alike. The growth target is judged on the large one.
func (b *bench) runGrowth(ctx context.Context) ([]*dataset, error) {
	if !b.o.has(toolPgmove) {
		b.progress("growth: skipped: it times pgmove only, and -tools has no pgmove")
		return nil, nil
	}
	var sets []*dataset
	for _, name := range []string{dataGrowthSmall, dataGrowthLarge} {
		ds, err := b.build(ctx, name)
		if err != nil {
			return nil, err
		}
		defer b.dropTargets(ctx, ds)
		sets = append(sets, ds)
	}
	for round := 1; round <= b.o.runs; round++ {
		for _, ds := range sets {
			ds.Runs = append(ds.Runs, b.timeTool(ctx, ds, toolPgmove, b.o.dstMajor, round))
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
	}
	for _, ds := range sets {
		ds.Targets = evaluate(b.o, ds)
	}
	large := sets[1]
	large.Targets = append([]targetResult{growthTarget(sets[0], large, b.o.dstMajor)}, large.Targets...)
	return sets, nil
}

// growthTarget judges "10× the tables in at most 11× the time" on the
// median runs of pgmove on the two growth datasets.
func growthTarget(small, large *dataset, major int) targetResult {
	t := targetResult{Target: fmt.Sprintf("pgmove on %d tables ≤ %g× its time on %d (PostgreSQL %d target)", large.Tables, wantGrowth, small.Tables, major), Status: "n/a"}
	s, l := find(small, toolPgmove, major), find(large, toolPgmove, major)
	switch {
	case s == nil || l == nil:
		t.Got = "not both run"
	case s.Error != "":
		t.Got = "small: pgmove " + s.Error
	case l.Error != "":
		t.Got = "large: pgmove " + l.Error
	case !s.Equal || !l.Equal:
		t.Status = "FAIL"
		t.Got = "a target is not equal to the source"
	default:
		ratio := l.Seconds / s.Seconds
		t.Got = fmt.Sprintf("%.2f× (medians of %d and %d runs: %.1f s vs %.1f s)", ratio, okRuns(large, toolPgmove, major), okRuns(small, toolPgmove, major), l.Seconds, s.Seconds)
		t.Status = passFail(ratio <= wantGrowth)
	}
	return t
}
