package copy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// These tests play the server's side of the COPY sub-protocol over a pipe,
// byte for byte as the protocol documents it (the integration tests run the
// relay against real servers): they pin down the cases a real server
// rarely produces on demand, such as a stream split at every byte, rows
// bigger than every buffer, an error mid-stream, or a stream cut short.

func msg(typ byte, body []byte) []byte {
	b := []byte{typ, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[1:], uint32(4+len(body)))
	return append(b, body...)
}

// done is how a server ends a COPY: its command tag, then ReadyForQuery
// with the session's transaction status.
func done(tag string, status byte) []byte {
	return append(msg('C', []byte(tag+"\x00")), msg('Z', []byte{status})...)
}

// binaryRow returns a random binary COPY row: a field count, then each
// field's length and bytes (NULLs and empty fields among them).
func binaryRow(r *rand.Rand, big bool) []byte {
	fields := 1 + r.IntN(5)
	row := binary.BigEndian.AppendUint16(nil, uint16(fields))
	for range fields {
		switch r.IntN(10) {
		case 0:
			row = binary.BigEndian.AppendUint32(row, 0xffffffff) // NULL
		case 1:
			row = binary.BigEndian.AppendUint32(row, 0)
		default:
			size := r.IntN(200)
			if big {
				size = readSize + r.IntN(readSize)
			}
			row = binary.BigEndian.AppendUint32(row, uint32(size))
			for range size {
				row = append(row, byte(r.IntN(256)))
			}
		}
	}
	return row
}

// serve plays a server answering one COPY TO with the given messages,
// written in random pieces, and returns the query it was sent.
func serve(t *testing.T, r *rand.Rand, conn net.Conn, stream []byte) <-chan string {
	t.Helper()
	query := make(chan string, 1)
	seed := r.Uint64()
	go func() {
		defer conn.Close()
		head := make([]byte, 5)
		if _, err := io.ReadFull(conn, head); err != nil {
			query <- ""
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
		io.ReadFull(conn, body)
		query <- string(bytes.TrimSuffix(body, []byte{0}))
		pr := rand.New(rand.NewPCG(seed, 1))
		for len(stream) > 0 {
			n := min(len(stream), 1+pr.IntN(3*frameSize))
			if pr.IntN(4) == 0 {
				n = min(len(stream), 1+pr.IntN(7)) // a message split anywhere
			}
			if _, err := conn.Write(stream[:n]); err != nil {
				return
			}
			stream = stream[n:]
		}
	}()
	return query
}

// relay runs readCopyOut against stream and returns the frames it emitted
// and the source's bytes it said were behind them.
func relay(t *testing.T, r *rand.Rand, stream []byte, binaryFormat bool, trim []bool) ([][]byte, int64, pgconn.CommandTag, error) {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	query := serve(t, r, server, stream)
	var frames [][]byte
	var read int64
	tag, err := readCopyOut(client, "COPY t TO STDOUT", binaryFormat, trim, func(f []byte, n int64) ([]byte, error) {
		if len(f) < frameHead || !bytes.Equal(f[:frameHead], make([]byte, frameHead)) {
			t.Fatalf("a frame without its %d bytes for the message header", frameHead)
		}
		frames = append(frames, bytes.Clone(f[frameHead:]))
		read += n
		return f[:frameHead], nil
	})
	if q := <-query; q != "COPY t TO STDOUT" {
		t.Fatalf("the server was sent %q", q)
	}
	return frames, read, tag, err
}

// splitRows cuts whole binary rows apart, or fails.
func splitRows(t *testing.T, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 2 {
			t.Fatalf("a frame ends inside a row")
		}
		fields := int(binary.BigEndian.Uint16(b))
		end := 2
		for range fields {
			if len(b) < end+4 {
				t.Fatalf("a frame ends inside a row")
			}
			l := int32(binary.BigEndian.Uint32(b[end:]))
			end += 4 + max(int(l), 0)
		}
		if end > len(b) {
			t.Fatalf("a frame ends inside a row")
		}
		out = append(out, b[:end])
		b = b[end:]
	}
	return out
}

var (
	notice    = msg('N', []byte("SNOTICE\x00Mhello\x00\x00"))
	parameter = msg('S', []byte("application_name\x00x\x00"))
)

func TestCopyOutBinary(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 3000, 20000} {
		var stream []byte
		stream = append(stream, msg('H', []byte{1, 0, 0})...)
		var rows [][]byte
		for i := range n {
			row := binaryRow(r, r.IntN(1500) == 0)
			rows = append(rows, row)
			body := row
			if i == 0 {
				// The header, with an extension area, comes with the
				// first row.
				body = append(append(bytes.Clone(binarySignature), 0, 0, 0, 0, 0, 0, 0, 3, 'x', 'y', 'z'), row...)
			}
			stream = append(stream, msg('d', body)...)
			if r.IntN(5000) == 0 {
				stream = append(stream, notice...)
				stream = append(stream, parameter...)
			}
		}
		if n == 0 {
			stream = append(stream, msg('d', append(bytes.Clone(binaryHeader), binaryTrailer...))...)
		} else {
			stream = append(stream, msg('d', binaryTrailer)...)
		}
		stream = append(stream, msg('c', nil)...)
		stream = append(stream, done("COPY 42", 'T')...)

		frames, read, tag, err := relay(t, r, stream, true, nil)
		if err != nil {
			t.Fatalf("%d rows: %v", n, err)
		}
		var size int
		for _, row := range rows {
			size += len(row)
		}
		if read != int64(size) {
			t.Fatalf("%d rows: %d bytes read, want %d", n, read, size)
		}
		if tag.String() != "COPY 42" {
			t.Fatalf("%d rows: tag %q", n, tag)
		}
		var got [][]byte
		for _, f := range frames {
			if len(f) == 0 {
				t.Fatalf("%d rows: an empty frame", n)
			}
			got = append(got, splitRows(t, f)...) // every frame is whole rows
		}
		if len(got) != len(rows) {
			t.Fatalf("%d rows: relayed %d", n, len(got))
		}
		for i := range rows {
			if !bytes.Equal(got[i], rows[i]) {
				t.Fatalf("%d rows: row %d differs", n, i)
			}
		}
	}
}

func TestCopyOutText(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var stream, want []byte
	for i := range 30000 {
		row := append(bytes.Repeat([]byte{'a' + byte(i%26)}, r.IntN(120)), '\\', 'N', '\t', 'x', '\n')
		want = append(want, row...)
		stream = append(stream, msg('d', row)...)
	}
	stream = append(stream, msg('c', nil)...)
	stream = append(stream, done("COPY 30000", 'I')...)
	frames, _, tag, err := relay(t, r, stream, false, nil)
	if err != nil || tag.RowsAffected() != 30000 {
		t.Fatalf("tag %q, error %v", tag, err)
	}
	var got []byte
	for _, f := range frames {
		if f[len(f)-1] != '\n' {
			t.Fatalf("a frame ends inside a row")
		}
		got = append(got, f...)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("relayed %d bytes, want %d", len(got), len(want))
	}
}

// fieldsRow is a binary COPY row of the given fields, nil for NULL.
func fieldsRow(fields ...[]byte) []byte {
	row := binary.BigEndian.AppendUint16(nil, uint16(len(fields)))
	for _, f := range fields {
		if f == nil {
			row = binary.BigEndian.AppendUint32(row, 0xffffffff)
			continue
		}
		row = binary.BigEndian.AppendUint32(row, uint32(len(f)))
		row = append(row, f...)
	}
	return row
}

// TestTrimBlanks: only the marked fields lose their trailing blanks, and
// only those; NULLs stay NULL; a malformed row is an error.
func TestTrimBlanks(t *testing.T) {
	b := func(s string) []byte { return []byte(s) }
	blanks := func(n int) string { return string(bytes.Repeat([]byte{' '}, n)) }
	trim := []bool{false, true, true, true}
	cases := []struct{ in, want []byte }{
		{fieldsRow(b("  1  "), b("ab  "), b(blanks(84)), nil), fieldsRow(b("  1  "), b("ab"), b(""), nil)},
		{fieldsRow(b("x"), b("a b"), b("日本 "+blanks(17)), b("\t\t ")), fieldsRow(b("x"), b("a b"), b("日本"), b("\t\t"))},
		{fieldsRow(nil, b("\t"), b(" x"+blanks(9)), b("")), fieldsRow(nil, b("\t"), b(" x"), b(""))},
		{fieldsRow(b(""), b("é"+blanks(8)), b("ñ"+blanks(7)+"z"), b(blanks(3))), fieldsRow(b(""), b("é"), b("ñ"+blanks(7)+"z"), b(""))},
	}
	for i, c := range cases {
		got, err := trimBlanks([]byte("head"), c.in, trim)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if !bytes.Equal(got, append([]byte("head"), c.want...)) {
			t.Errorf("case %d: got %q, want %q", i, got[4:], c.want)
		}
	}
	good := fieldsRow(b("1"), b("a "), b("b"), nil)
	for _, bad := range [][]byte{
		nil,
		good[:1],
		fieldsRow(b("1"), b("a "), b("b")), // a field short
		fieldsRow(b("1"), b("a "), b("b"), nil, nil), // a field too many
		good[:len(good)-1],                           // cut inside a length
		append(bytes.Clone(good), 0),                 // a byte after the last field
		good[:len(good)-6],                           // cut inside a value
	} {
		if _, err := trimBlanks(nil, bad, trim); err == nil {
			t.Errorf("malformed row %q: no error", bad)
		}
	}
}

// TestTrimBlanksText: the same in text format, where a tab separates
// fields and a newline ends the row.
func TestTrimBlanksText(t *testing.T) {
	trim := []bool{false, true, true}
	cases := []struct{ in, want string }{
		{"  1  \tab  \tc   \n", "  1  \tab\tc\n"},
		{"\\N\t\\N\t\\N\n", "\\N\t\\N\t\\N\n"},
		{"x\t   \t\n", "x\t\t\n"},
		{"x\ta\\\\ \t日本 ñ  \n", "x\ta\\\\\t日本 ñ\n"},
		{"x\ta\\t \tb\\n  \n", "x\ta\\t\tb\\n\n"},
	}
	for i, c := range cases {
		got, err := trimBlanksText([]byte("head"), []byte(c.in), trim)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if string(got) != "head"+c.want {
			t.Errorf("case %d: got %q, want %q", i, got[4:], c.want)
		}
	}
	for _, bad := range []string{"", "a\tb\tc", "a\tb\n", "a\tb\tc\td\n"} {
		if got, err := trimBlanksText([]byte("head"), []byte(bad), trim); err == nil || string(got) != "head" {
			t.Errorf("malformed row %q: %q, %v", bad, got, err)
		}
	}
}

// TestCopyOutTrim: a stream relayed with trimmed fields comes out row for
// row with only those fields' trailing blanks gone, and the bytes read are
// the source's.
func TestCopyOutTrim(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	trim := []bool{false, true, false}
	stream := msg('H', []byte{1, 0, 0})
	var want [][]byte
	var size int64
	for i := range 40000 {
		v := bytes.Repeat([]byte{'a'}, r.IntN(10))
		pad := bytes.Repeat([]byte{' '}, r.IntN(100))
		tail := append(bytes.Clone(v), pad...) // the third keeps its blanks
		row := fieldsRow([]byte{byte(i)}, append(bytes.Clone(v), pad...), tail)
		want = append(want, fieldsRow([]byte{byte(i)}, v, tail))
		size += int64(len(row))
		if i == 0 {
			row = append(bytes.Clone(binaryHeader), row...)
		}
		stream = append(stream, msg('d', row)...)
	}
	stream = append(stream, msg('d', binaryTrailer)...)
	stream = append(stream, done("COPY 40000", 'I')...)
	frames, read, _, err := relay(t, r, stream, true, trim)
	if err != nil {
		t.Fatal(err)
	}
	if read != size {
		t.Fatalf("%d bytes read, want %d", read, size)
	}
	var got [][]byte
	for _, f := range frames {
		got = append(got, splitRows(t, f)...)
	}
	if len(got) != len(want) {
		t.Fatalf("%d rows relayed, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("row %d: %q, want %q", i, got[i], want[i])
		}
	}
	// A row of another shape than the columns' is an error, not a guess.
	bad := append(msg('H', []byte{1, 0, 0}), msg('d', append(bytes.Clone(binaryHeader), fieldsRow(nil, nil)...))...)
	bad = append(bad, msg('d', binaryTrailer)...)
	bad = append(bad, done("COPY 1", 'I')...)
	if _, _, _, err := relay(t, r, bad, true, trim); err == nil {
		t.Fatal("a row of 2 fields for 3 columns: no error")
	}
}

// TestCopyOutBroken: the server's error, a stream cut short, a binary
// stream without its header or trailer are all errors, and the server's
// own error comes back as such.
func TestCopyOutBroken(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	row := binaryRow(r, false)
	first := msg('d', append(bytes.Clone(binaryHeader), row...))
	er, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "22P02", Message: "boom"}).Encode(nil)
	fatal, _ := (&pgproto3.ErrorResponse{Severity: "FATAL", Code: "57P01", Message: "terminating connection"}).Encode(nil)
	end := done("COPY 1", 'T')
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	cases := []struct {
		name   string
		stream []byte
		code   string // the server's SQLSTATE, if the error is its own
	}{
		{"server error", cat(first, msg('d', row), er, msg('Z', []byte{'E'})), "22P02"},
		{"session ended", cat(first, msg('d', row), fatal), "57P01"}, // FATAL, then the connection closes
		{"cut inside a message", cat(first, msg('d', row)[:7]), ""},
		{"no signature", cat(msg('d', row), msg('d', binaryTrailer), end), ""},
		{"no trailer", cat(first, msg('d', row), end), ""},
		{"rows after the trailer", cat(first, msg('d', binaryTrailer), msg('d', row), end), ""},
		{"bad length", cat(first, []byte{'d', 0, 0, 0, 2}), ""},
	}
	for _, c := range cases {
		_, _, _, err := relay(t, r, c.stream, true, nil)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			t.Errorf("%s: no error", c.name)
		case c.code != "" && (!errors.As(err, &pgErr) || pgErr.Code != c.code):
			t.Errorf("%s: %v, want the server's %s", c.name, err, c.code)
		case c.code == "" && serverSaid(err):
			t.Errorf("%s: %v taken for the server's own error", c.name, err)
		}
	}
}

// TestCopyInEarlyError: a target that fails the COPY while rows are still
// coming answers at once; the relay stops sending and returns the
// server's error, and the frames it did send were well formed.
func TestCopyInEarlyError(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	er, _ := (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "23502", Message: "null value"}).Encode(nil)
	got := make(chan [][]byte, 1)
	go func() {
		defer server.Close()
		var msgs [][]byte
		read := func() []byte {
			head := make([]byte, 5)
			if _, err := io.ReadFull(server, head); err != nil {
				return nil
			}
			body := make([]byte, binary.BigEndian.Uint32(head[1:])-4)
			if _, err := io.ReadFull(server, body); err != nil {
				return nil
			}
			return append(head[:1], body...)
		}
		read() // the query
		server.Write(msg('G', []byte{1, 0, 0}))
		for range 3 {
			msgs = append(msgs, read())
		}
		server.Write(append(er, msg('Z', []byte{'E'})...))
		// The server drops what else comes, as PostgreSQL does.
		for m := read(); m != nil; m = read() {
			if m[0] != 'd' {
				msgs = append(msgs, m)
				break
			}
		}
		got <- msgs
	}()
	c := &copyIn{ctx: context.Background(), conn: client, binary: true, answer: make(chan copyResult, 1),
		stop: func() bool { return true }}
	rd := &msgReader{conn: client, buf: make([]byte, 64)}
	if err := c.begin(rd, "COPY t FROM STDIN", ""); err != nil {
		t.Fatal(err)
	}
	go c.read(rd)
	var err error
	for i := 0; err == nil && i < 1000; i++ {
		err = c.send(append(newFrame(), binaryRow(rand.New(rand.NewPCG(7, uint64(i))), false)...))
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23502" {
		t.Fatalf("send: %v, want the server's 23502", err)
	}
	c.fail("stop") // sends nothing more: the server has answered
	client.Close()
	msgs := <-got
	if !bytes.Equal(msgs[0], append([]byte{'d'}, binaryHeader...)) {
		t.Fatalf("the first frame is not the binary header: %q", msgs[0])
	}
	for _, m := range msgs[1:3] {
		if m[0] != 'd' {
			t.Fatalf("a message %q among the frames", m[0])
		}
		splitRows(t, m[1:])
	}
}

// TestCopyOutZeroColumns relays the rows of a table without a column to
// copy (CREATE TABLE t (), or only generated columns): in binary each
// tuple is a field count of 0 and nothing else, in text an empty line.
// Enough of them fill several frames; none may be lost or merged.
func TestCopyOutZeroColumns(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n = 200000 // 400 kB of binary tuples, 200 kB of text rows: several frames each
	zero := []byte{0, 0}
	for _, binaryFormat := range []bool{true, false} {
		var stream []byte
		for i := range n {
			body := []byte("\n")
			if binaryFormat {
				body = zero
				if i == 0 {
					body = append(bytes.Clone(binaryHeader), zero...)
				}
			}
			stream = append(stream, msg('d', body)...)
		}
		if binaryFormat {
			stream = append(stream, msg('d', binaryTrailer)...)
		}
		stream = append(stream, msg('c', nil)...)
		stream = append(stream, done("COPY 200000", 'T')...)
		for _, trim := range [][]bool{nil, {}} {
			frames, read, tag, err := relay(t, r, stream, binaryFormat, trim)
			if err != nil || tag.RowsAffected() != n {
				t.Fatalf("binary %t, trim %v: tag %q, error %v", binaryFormat, trim, tag, err)
			}
			rowSize := 1
			if binaryFormat {
				rowSize = 2
			}
			if read != int64(n*rowSize) {
				t.Fatalf("binary %t: %d bytes read, want %d", binaryFormat, read, n*rowSize)
			}
			if len(frames) < 2 {
				t.Fatalf("binary %t: %d frame(s), want several", binaryFormat, len(frames))
			}
			rows := 0
			for _, f := range frames {
				if binaryFormat {
					for _, row := range splitRows(t, f) {
						if !bytes.Equal(row, zero) {
							t.Fatalf("binary: relayed row %x, want a tuple of 0 fields", row)
						}
						rows++
					}
					continue
				}
				if !bytes.Equal(f, bytes.Repeat([]byte("\n"), len(f))) {
					t.Fatalf("text: a frame of something else than empty rows")
				}
				rows += len(f)
			}
			if rows != n {
				t.Fatalf("binary %t: relayed %d rows, want %d", binaryFormat, rows, n)
			}
		}
	}
}

// TestTrimZeroColumns: the trimmers take a zero-field row as it is, and
// refuse a row with fields where the table has none.
func TestTrimZeroColumns(t *testing.T) {
	if f, err := trimBlanks(nil, []byte{0, 0}, []bool{}); err != nil || !bytes.Equal(f, []byte{0, 0}) {
		t.Fatalf("binary: %x, %v", f, err)
	}
	if _, err := trimBlanks(nil, fieldsRow([]byte("x")), []bool{}); err == nil {
		t.Fatal("binary: a row of 1 field passed as one of 0")
	}
	if f, err := trimBlanksText(nil, []byte("\n"), []bool{}); err != nil || string(f) != "\n" {
		t.Fatalf("text: %q, %v", f, err)
	}
}
