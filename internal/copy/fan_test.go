package copy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// binaryRows builds a binary COPY stream: header (with an extension area),
// rows of NULLs, empty and random fields, some bigger than a batch, trailer.
func binaryRows(r *rand.Rand, n int) (stream []byte, rows [][]byte) {
	stream = append(stream, binarySignature...)
	stream = binary.BigEndian.AppendUint32(stream, 0)
	stream = binary.BigEndian.AppendUint32(stream, 3)
	stream = append(stream, 'x', 'y', 'z')
	for i := 0; i < n; i++ {
		var row []byte
		fields := 1 + r.IntN(5)
		row = binary.BigEndian.AppendUint16(row, uint16(fields))
		for f := 0; f < fields; f++ {
			switch r.IntN(10) {
			case 0:
				row = binary.BigEndian.AppendUint32(row, 0xffffffff) // NULL
			case 1:
				row = binary.BigEndian.AppendUint32(row, 0)
			default:
				size := r.IntN(200)
				if r.IntN(2000) == 0 {
					size = batchSize + r.IntN(batchSize)
				}
				row = binary.BigEndian.AppendUint32(row, uint32(size))
				for k := 0; k < size; k++ {
					row = append(row, byte(r.IntN(256)))
				}
			}
		}
		rows = append(rows, row)
		stream = append(stream, row...)
	}
	stream = append(stream, binaryTrailer...)
	return stream, rows
}

// deal writes stream to a dealer in random pieces and returns what each of
// the sessions read.
func deal(t *testing.T, r *rand.Rand, stream []byte, binaryFormat bool, sessions int) ([][]byte, error) {
	t.Helper()
	stop := make(chan struct{})
	var counted atomic.Int64
	d := newDealer(binaryFormat, sessions, stop, &counted)
	out := make([][]byte, sessions)
	var wg sync.WaitGroup
	for i := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := io.ReadAll(&share{d: d})
			out[i] = b
		}()
	}
	var err error
	for rest := stream; len(rest) > 0 && err == nil; {
		n := min(len(rest), 1+r.IntN(300))
		if r.IntN(50) == 0 {
			n = min(len(rest), r.IntN(3*batchSize)+1)
		}
		_, err = d.Write(rest[:n])
		rest = rest[n:]
	}
	if err == nil {
		err = d.finish()
	}
	d.close(err)
	wg.Wait()
	return out, err
}

func TestDealBinary(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 5000, 40000} {
		stream, rows := binaryRows(r, n)
		out, err := deal(t, r, stream, true, 3)
		if err != nil {
			t.Fatal(err)
		}
		header := stream[:22]
		var got [][]byte
		for i, b := range out {
			if !bytes.HasPrefix(b, header) || !bytes.HasSuffix(b, binaryTrailer) {
				t.Fatalf("%d rows: session %d's stream lacks the header or the trailer", n, i)
			}
			d := &dealer{binary: true}
			d.buf = b
			if err := d.scanBinary(); err != nil || !d.ended {
				t.Fatalf("%d rows: session %d's stream does not parse: %v", n, i, err)
			}
			got = append(got, splitRows(d.buf)...)
		}
		if !sameRows(got, rows) {
			t.Fatalf("%d rows: the sessions got %d rows, not the source's", n, len(got))
		}
	}
}

// splitRows cuts whole binary rows apart.
func splitRows(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		fields := int(binary.BigEndian.Uint16(b))
		end := 2
		for f := 0; f < fields; f++ {
			l := int32(binary.BigEndian.Uint32(b[end:]))
			end += 4 + max(int(l), 0)
		}
		out = append(out, b[:end])
		b = b[end:]
	}
	return out
}

func sameRows(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	sa, sb := slices.Clone(a), slices.Clone(b)
	slices.SortFunc(sa, bytes.Compare)
	slices.SortFunc(sb, bytes.Compare)
	for i := range sa {
		if !bytes.Equal(sa[i], sb[i]) {
			return false
		}
	}
	return true
}

func TestDealText(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var stream []byte
	var rows [][]byte
	for i := 0; i < 30000; i++ {
		size := r.IntN(120)
		if r.IntN(3000) == 0 {
			size = batchSize * 2
		}
		row := bytes.Repeat([]byte{'a' + byte(i%26)}, size)
		row = append(row, '\\', 'n', '\t', '\\', 'N', '\n')
		rows = append(rows, row)
		stream = append(stream, row...)
	}
	out, err := deal(t, r, stream, false, 4)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]byte
	for _, b := range out {
		for len(b) > 0 {
			i := bytes.IndexByte(b, '\n')
			got = append(got, b[:i+1])
			b = b[i+1:]
		}
	}
	if !sameRows(got, rows) {
		t.Fatalf("the sessions got %d rows, want %d", len(got), len(rows))
	}
}

// TestDealBroken: a stream cut inside a row, or without a header, is an
// error, and every session sees the source's error, not an end.
func TestDealBroken(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	stream, _ := binaryRows(r, 100)
	for _, cut := range [][]byte{stream[:len(stream)-5], stream[:10]} {
		stop := make(chan struct{})
		var counted atomic.Int64
		d := newDealer(true, 2, stop, &counted)
		errs := make(chan error, 2)
		for range 2 {
			go func() {
				_, err := io.ReadAll(&share{d: d})
				errs <- err
			}()
		}
		_, err := d.Write(cut)
		if err == nil {
			err = d.finish()
		}
		if err == nil {
			t.Fatalf("a stream of %d bytes cut short: no error", len(cut))
		}
		d.close(err)
		for range 2 {
			if e := <-errs; !errors.Is(e, err) {
				t.Fatalf("a session read %v, want the source's error", e)
			}
		}
	}
}
