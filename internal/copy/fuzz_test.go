package copy

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzCopyOut feeds the relay an arbitrary server stream after a COPY TO:
// it must end (a result or an error) without panicking or hanging, and what
// it emits is whole binary rows only.
func FuzzCopyOut(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	head := append([]byte("PGCOPY\n\xff\r\n\x00"), make([]byte, 8)...)
	row := binaryRow(r, false)
	f.Add(append(append(msg('H', []byte{1, 0, 0}), msg('d', append(bytes.Clone(head), row...))...), append(msg('d', []byte{0xff, 0xff}), msg('c', nil)...)...), uint64(1))
	f.Add(append(msg('H', []byte{1, 0, 0}), msg('d', bytes.Clone(head))...), uint64(2))
	f.Add(msg('E', []byte("SERROR\x00C42P01\x00Mno such table\x00\x00")), uint64(3))
	f.Add([]byte{'d', 0xff, 0xff, 0xff, 0xff}, uint64(4))
	f.Fuzz(func(t *testing.T, stream []byte, seed uint64) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			frames, _, _, err := relay(t, rand.New(rand.NewPCG(seed, 3)), stream, true, nil)
			if err != nil {
				return
			}
			for _, fr := range frames {
				splitRows(t, fr)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the relay hangs on a %d-byte stream", len(stream))
		}
	})
}

// FuzzTrimBlanks: on any row, binary or text, trimming either fails or
// leaves a row of the same fields whose trimmed fields lost only trailing
// blanks.
func FuzzTrimBlanks(f *testing.F) {
	f.Add(fieldsRow([]byte("  1  "), []byte("ab  "), nil), uint8(6))
	f.Add([]byte("a  \tb \\t \n"), uint8(3))
	f.Fuzz(func(t *testing.T, row []byte, mask uint8) {
		fields := 0
		if len(row) >= 2 {
			fields = int(binary.BigEndian.Uint16(row))
		}
		trim := make([]bool, min(fields, 16))
		for i := range trim {
			trim[i] = mask&(1<<(i%8)) != 0
		}
		if got, err := trimBlanks([]byte("head"), row, trim); err == nil {
			if !bytes.HasPrefix(got, []byte("head")) {
				t.Fatalf("the frame's head was overwritten")
			}
			if fields != len(trim) {
				t.Fatalf("a row of %d fields accepted for %d columns", fields, len(trim))
			}
			if len(got)-4 > len(row) {
				t.Fatalf("trimming grew the row: %q -> %q", row, got[4:])
			}
		}
		trimText := []bool{mask&1 != 0, mask&2 != 0, mask&4 != 0}
		if got, err := trimBlanksText(nil, row, trimText); err == nil {
			if len(got) > len(row) || bytes.Count(got, []byte{'\t'}) != bytes.Count(row, []byte{'\t'}) {
				t.Fatalf("text trimming changed the fields: %q -> %q", row, got)
			}
		}
	})
}
