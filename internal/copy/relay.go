package copy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// The relay speaks the COPY sub-protocol on the sessions' connections
// itself. The source sends a COPY's rows one CopyData message each: read
// through pgconn, every row costs a trip through its message decoder and a
// Write of a few dozen bytes, then the rows are copied again through a pipe
// into pgconn's CopyFrom and its goroutines; at ten million rows, over a
// second of CPU on a machine whose cores the two servers need. Here the
// rows are copied once, from the source's read buffer into a frame, a
// CopyData message of many rows that is written to the target as it is.
//
// The protocol guarantees what this relies on: "messages sent from the
// backend will always correspond to single data rows", so frames are cut
// between rows without parsing them. In binary format the stream's header
// is sent with the first row and its trailer alone; the relay takes both
// off, and each target COPY gets its own.

const (
	frameHead = 5         // a frame's message type and length
	frameSize = 128 << 10 // rows in a frame, about: what the target's COPY reads at once is 64 kB
	readSize  = 256 << 10 // one read of the source's socket, at most
)

// Frames and read buffers are reused: thousands of small tables would
// otherwise each allocate (and the kernel zero) fresh ones.
var (
	framePool = sync.Pool{New: func() any {
		b := make([]byte, frameHead, frameHead+frameSize+frameSize/4)
		return &b
	}}
	readPool = sync.Pool{New: func() any {
		b := make([]byte, readSize)
		return &b
	}}
)

// newFrame returns an empty frame.
func newFrame() []byte { return (*framePool.Get().(*[]byte))[:frameHead] }

// putFrame gives a spent frame back, unless a huge row grew it.
func putFrame(b []byte) {
	if cap(b) <= 2*(frameHead+frameSize) {
		b = b[:frameHead]
		framePool.Put(&b)
	}
}

// smallFrame returns a frame of data.
func smallFrame(data []byte) []byte {
	return append(make([]byte, frameHead, frameHead+len(data)), data...)
}

var (
	binarySignature = []byte("PGCOPY\n\377\r\n\000")
	// binaryHeader opens a binary COPY stream: the signature, no flags,
	// no header extension.
	binaryHeader = append(append([]byte(nil), binarySignature...), 0, 0, 0, 0, 0, 0, 0, 0)
	// binaryTrailer closes one: a field count of -1.
	binaryTrailer = []byte{0xff, 0xff}
)

// targetError is an error of the target session, returned through the
// source's stream.
type targetError struct{ error }

func (e targetError) Unwrap() error { return e.error }

// emitFunc takes a frame of rows, made of read bytes of the source's
// rows, and returns the frame to fill next: the same one, or a new one if
// it keeps the one it was given.
type emitFunc func(frame []byte, read int64) ([]byte, error)

// copyOut runs sql, a COPY ... TO STDOUT, on the source session pg and
// passes the rows to emit in frames: frame[:frameHead] is left for the
// target's message header, then whole rows (without the binary header and
// trailer). The fields trim marks lose their trailing blanks on the
// way (see trimBlanks); trim is nil when none do.
// As with pgconn's CopyTo, an error the server reports leaves pg usable,
// any other failure closes it.
func copyOut(ctx context.Context, pg *pgconn.PgConn, sql string, binaryFormat bool, trim []bool, emit emitFunc) (pgconn.CommandTag, error) {
	if err := ctx.Err(); err != nil {
		return pgconn.CommandTag{}, err
	}
	// Nothing may wait in pgconn's buffers once its connection is read
	// directly: SyncConn makes sure.
	if err := pg.SyncConn(ctx); err != nil {
		pg.Close(context.Background())
		return pgconn.CommandTag{}, err
	}
	conn := pg.Conn()
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	tag, err := readCopyOut(conn, sql, binaryFormat, trim, emit)
	if !stop() {
		pg.Close(context.Background()) // cut off mid-message
		if ctx.Err() != nil && !errors.As(err, new(targetError)) {
			err = ctx.Err()
		}
		return pgconn.CommandTag{}, err
	}
	if !usable(err) {
		pg.Close(context.Background())
	}
	return tag, err
}

// serverSaid reports an error the server sent (of this session: not the
// target's, passed through the source's stream).
func serverSaid(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && !errors.As(err, new(targetError))
}

// usable reports whether a session is in good order after err: none, or an
// error the server sent without ending the session.
func usable(err error) bool {
	var pgErr *pgconn.PgError
	return err == nil || serverSaid(err) && errors.As(err, &pgErr) && pgErr.Severity != "FATAL" && pgErr.Severity != "PANIC"
}

func readCopyOut(conn net.Conn, sql string, binaryFormat bool, trim []bool, emit emitFunc) (pgconn.CommandTag, error) {
	if err := sendQuery(conn, sql); err != nil {
		return pgconn.CommandTag{}, err
	}
	frame := newFrame()
	rb := readPool.Get().(*[]byte)
	r := &msgReader{conn: conn, buf: *rb}
	defer func() {
		if frame != nil {
			putFrame(frame)
		}
		readPool.Put(rb) // the original buffer: r.buf may have grown for a huge row
	}()
	header := binaryFormat // the first row carries the binary header
	ended := false         // the binary trailer came
	var tag pgconn.CommandTag
	var pgErr error
	var read int64 // the source's bytes behind frame
	cut := trimBlanks
	if !binaryFormat {
		cut = trimBlanksText
	}
	for {
		typ, body, err := r.next()
		if err != nil {
			if pgErr != nil {
				return pgconn.CommandTag{}, pgErr // FATAL: the server closed the connection
			}
			return pgconn.CommandTag{}, err
		}
		switch typ {
		case 'd': // CopyData: one row
			if pgErr != nil {
				continue
			}
			if header {
				if body, err = skipHeader(body); err != nil {
					return pgconn.CommandTag{}, err
				}
				header = false
			}
			if binaryFormat && len(body) >= 2 && body[0] == 0xff && body[1] == 0xff {
				if len(body) != len(binaryTrailer) {
					return pgconn.CommandTag{}, errors.New("binary COPY stream: data after its trailer")
				}
				ended = true
				continue
			}
			if ended {
				return pgconn.CommandTag{}, errors.New("binary COPY stream: rows after its trailer")
			}
			read += int64(len(body))
			if trim == nil {
				frame = append(frame, body...)
			} else if frame, err = cut(frame, body, trim); err != nil {
				return pgconn.CommandTag{}, err
			}
			if len(frame) >= frameHead+frameSize {
				if frame, err = emit(frame, read); err != nil {
					return pgconn.CommandTag{}, err
				}
				read = 0
			}
		case 'C': // CommandComplete
			tag = commandTag(body)
		case 'E':
			pgErr = decodeError(body)
		case 'Z': // ReadyForQuery: the command is over
			switch {
			case pgErr != nil:
				return pgconn.CommandTag{}, pgErr
			case binaryFormat && !ended:
				return pgconn.CommandTag{}, errors.New("binary COPY stream ended without its trailer")
			}
			if len(frame) > frameHead {
				if frame, err = emit(frame, read); err != nil {
					return pgconn.CommandTag{}, err
				}
			}
			return tag, nil
		case 'c', 'H', 'N', 'S', 'A':
			// CopyDone, CopyOutResponse, a notice, a parameter's new
			// value, a notification: nothing to do.
		default:
			return pgconn.CommandTag{}, fmt.Errorf("unexpected message %q from the server during COPY", typ)
		}
	}
}

// trimBlanks appends a binary COPY row to frame with the trailing blanks of
// the fields trim marks taken off. Those are character(n) fields whose
// column is character(m) on the target too: the stored value is always
// padded with blanks to its length, and the target's input function pads
// it again, so the rows stored are the same bytes, but the target no
// longer checks the blanks' length character by character (half the
// target's CPU on pgbench_accounts, whose filler is 84 blanks) and the
// relay writes less. A blank (0x20) is never part of a multibyte
// character in any encoding PostgreSQL has.
func trimBlanks(frame, row []byte, trim []bool) ([]byte, error) {
	if len(row) < 2 || int(binary.BigEndian.Uint16(row)) != len(trim) {
		return frame, errMalformedRow
	}
	// The row is copied whole, then the blanks are cut in place: most rows
	// need only their length fixed and the copy shortened.
	start := len(frame)
	frame = append(frame, row...)
	p := start + 2
	for _, t := range trim {
		if len(frame)-p < 4 {
			return frame[:start], errMalformedRow
		}
		n := int32(binary.BigEndian.Uint32(frame[p:]))
		p += 4
		if n < 0 { // NULL
			continue
		}
		end := p + int(n)
		if int(n) > len(frame)-p {
			return frame[:start], errMalformedRow
		}
		if t {
			var cut int
			if frame, cut = cutBlanks(frame, p, end); cut > 0 {
				end -= cut
				binary.BigEndian.PutUint32(frame[p-4:], uint32(end-p))
			}
		}
		p = end
	}
	if p != len(frame) {
		return frame[:start], errMalformedRow
	}
	return frame, nil
}

// trimBlanksText is trimBlanks for a row in text format: fields separated
// by tabs, a newline at the end. COPY TO escapes tabs, newlines and
// backslashes in values and never a blank, so the raw bytes are the
// separators and a value's trailing blanks are its own.
func trimBlanksText(frame, row []byte, trim []bool) ([]byte, error) {
	if len(row) == 0 || row[len(row)-1] != '\n' {
		return frame, errMalformedRow
	}
	start := len(frame)
	frame = append(frame, row...)
	p := start
	for i, t := range trim {
		end := len(frame) - 1 // the last field ends at the newline
		tab := bytes.IndexByte(frame[p:end], '\t')
		switch {
		case i < len(trim)-1 && tab < 0, i == len(trim)-1 && tab >= 0:
			return frame[:start], errMalformedRow
		case tab >= 0:
			end = p + tab
		}
		if t {
			var cut int
			frame, cut = cutBlanks(frame, p, end)
			end -= cut
		}
		p = end + 1
	}
	return frame, nil
}

// cutBlanks takes the trailing blanks of the value frame[p:end] out of
// frame, and returns it and how many it took.
func cutBlanks(frame []byte, p, end int) ([]byte, int) {
	v := end
	for v-p >= 8 && binary.LittleEndian.Uint64(frame[v-8:]) == 0x2020202020202020 {
		v -= 8
	}
	for v > p && frame[v-1] == ' ' {
		v--
	}
	if v == end {
		return frame, 0
	}
	return append(frame[:v], frame[end:]...), end - v
}

var errMalformedRow = errors.New("COPY stream: a row of another shape than the table's columns")

// skipHeader returns the first row without the binary header before it.
func skipHeader(b []byte) ([]byte, error) {
	if len(b) < 19 || !bytes.Equal(b[:11], binarySignature) {
		return nil, errors.New("binary COPY stream without its signature")
	}
	ext := int(binary.BigEndian.Uint32(b[15:19]))
	if ext < 0 || len(b)-19 < ext {
		return nil, errors.New("binary COPY stream: malformed header")
	}
	return b[19+ext:], nil
}

func sendQuery(conn net.Conn, sql string) error {
	q, err := (&pgproto3.Query{String: sql}).Encode(nil)
	if err != nil {
		return err
	}
	_, err = conn.Write(q)
	return err
}

// commandTag decodes a CommandComplete message's body.
func commandTag(body []byte) pgconn.CommandTag {
	return pgconn.NewCommandTag(string(bytes.TrimSuffix(body, []byte{0})))
}

func decodeError(body []byte) error {
	var er pgproto3.ErrorResponse
	if err := er.Decode(body); err != nil {
		return err
	}
	return pgconn.ErrorResponseToPgError(&er)
}

// copyIn is a target session's COPY ... FROM STDIN under way: frames are
// written as they come, and the server's answer, which may come early if
// the COPY fails, is read by a goroutine.
type copyIn struct {
	ctx    context.Context
	pg     *pgconn.PgConn
	conn   net.Conn
	binary bool
	stop   func() bool
	answer chan copyResult
	done   *copyResult // the answer, once taken
	r      *msgReader  // the reader's, once it has stopped
	// epilogue is a query sent with CopyDone, answered after the COPY:
	// the load's ledger entry and its COMMIT, at no round trip of its own.
	epilogue    string
	epilogueErr error
}

type copyResult struct {
	tag pgconn.CommandTag
	err error
}

// startCopyIn runs sql, a COPY ... FROM STDIN, on the target session pg.
// prelude, when given, is a query sent in the same write, ahead of it
// (BEGIN, TRUNCATE): it costs no round trip of its own.
func startCopyIn(ctx context.Context, pg *pgconn.PgConn, sql string, binaryFormat bool, prelude string) (*copyIn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := pg.SyncConn(ctx); err != nil {
		pg.Close(context.Background())
		return nil, err
	}
	c := &copyIn{ctx: ctx, pg: pg, conn: pg.Conn(), binary: binaryFormat, answer: make(chan copyResult, 1)}
	c.stop = context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	r := &msgReader{conn: c.conn, buf: make([]byte, 8<<10)}
	c.r = r
	err := c.begin(r, sql, prelude)
	if err != nil {
		if !c.stop() || !usable(err) {
			pg.Close(context.Background())
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	go c.read(r)
	return c, nil
}

// begin sends the command and waits for the server to take data.
func (c *copyIn) begin(r *msgReader, sql, prelude string) error {
	var msg []byte
	var err error
	pending := 0 // answers to the prelude still to come
	if prelude != "" {
		if msg, err = (&pgproto3.Query{String: prelude}).Encode(nil); err != nil {
			return err
		}
		pending = 1
	}
	if msg, err = (&pgproto3.Query{String: sql}).Encode(msg); err != nil {
		return err
	}
	if _, err := c.conn.Write(msg); err != nil {
		return err
	}
	var pgErr error
	for {
		typ, body, err := r.next()
		if err != nil {
			if pgErr != nil {
				return pgErr
			}
			return err
		}
		switch typ {
		case 'G': // CopyInResponse
			if pgErr != nil {
				// The prelude failed, yet the COPY started: end it.
				fail, _ := (&pgproto3.CopyFail{Message: "the query before it failed"}).Encode(nil)
				if _, err := c.conn.Write(fail); err != nil {
					return err
				}
				continue
			}
			if c.binary {
				return c.write(smallFrame(binaryHeader))
			}
			return nil
		case 'E':
			if pgErr == nil {
				pgErr = decodeError(body)
			}
		case 'Z':
			if pending > 0 {
				pending--
				continue
			}
			if pgErr == nil {
				pgErr = errors.New("the server did not start the COPY")
			}
			return pgErr
		case 'N', 'S', 'A', 'C':
		default:
			return fmt.Errorf("unexpected message %q from the server starting COPY", typ)
		}
	}
}

// read waits for the server's answer: it comes after CopyDone, or before
// it if the COPY fails.
func (c *copyIn) read(r *msgReader) {
	var res copyResult
	for {
		typ, body, err := r.next()
		if err != nil {
			if res.err == nil {
				res.err = err
			} // else a FATAL error, sent before the server closed the connection
			c.answer <- copyResult{err: res.err}
			return
		}
		switch typ {
		case 'C':
			res.tag = commandTag(body)
		case 'E':
			if res.err == nil {
				res.err = decodeError(body)
			}
		case 'Z':
			c.answer <- res
			return
		case 'N', 'S', 'A':
		default:
			c.answer <- copyResult{err: fmt.Errorf("unexpected message %q from the server during COPY", typ)}
			return
		}
	}
}

// write sends a frame: frame[frameHead:] is the data.
func (c *copyIn) write(frame []byte) error {
	frame[0] = 'd'
	binary.BigEndian.PutUint32(frame[1:], uint32(len(frame)-1))
	_, err := c.conn.Write(frame)
	return err
}

// send sends a frame of rows, unless the server has already answered: a
// failed COPY's error.
func (c *copyIn) send(frame []byte) error {
	if c.done == nil {
		select {
		case res := <-c.answer:
			c.done = &res
		default:
		}
	}
	if c.done != nil {
		if c.done.err != nil {
			return c.done.err
		}
		return errors.New("the server ended the COPY early")
	}
	if err := c.write(frame); err != nil {
		return c.settle(err)
	}
	return nil
}

// settle takes the server's answer after a failed write, and returns the
// server's error if it sent one before it closed the connection (a session
// terminated, a server shutting down), which says more than the write's.
func (c *copyIn) settle(writeErr error) error {
	if c.done == nil {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		var res copyResult
		select {
		case res = <-c.answer:
		case <-t.C:
			// No answer: the reader must not wait for one that may
			// never come.
			c.conn.SetDeadline(time.Unix(1, 0))
			res = <-c.answer
		}
		c.done = &res
	}
	if serverSaid(c.done.err) {
		return c.done.err
	}
	return writeErr
}

// finish ends the COPY and returns the server's answer.
func (c *copyIn) finish() (pgconn.CommandTag, error) { return c.finishWith("") }

// finishWith ends the COPY and sends epilogue (a query) in the same write;
// it returns the COPY's answer. The epilogue's error, if any, is in
// c.epilogueErr; the COPY's error comes first.
func (c *copyIn) finishWith(epilogue string) (pgconn.CommandTag, error) {
	var err error
	if c.done == nil {
		var msg []byte
		if c.binary {
			msg = append(msg, 'd', 0, 0, 0, byte(4+len(binaryTrailer)))
			msg = append(msg, binaryTrailer...)
		}
		msg = append(msg, 'c', 0, 0, 0, 4) // CopyDone
		if epilogue != "" {
			if msg, err = (&pgproto3.Query{String: epilogue}).Encode(msg); err != nil {
				return pgconn.CommandTag{}, err
			}
		}
		if _, err = c.conn.Write(msg); err == nil {
			c.epilogue = epilogue
		}
	}
	return c.end(err)
}

// readEpilogue reads the epilogue's answer up to its ReadyForQuery. A
// COMMIT that the server turned into a ROLLBACK (the transaction had
// failed) is an error too.
func (c *copyIn) readEpilogue() error {
	var pgErr error
	var last pgconn.CommandTag
	for {
		typ, body, err := c.r.next()
		if err != nil {
			return err
		}
		switch typ {
		case 'C':
			last = commandTag(body)
		case 'E':
			if pgErr == nil {
				pgErr = decodeError(body)
			}
		case 'Z':
			if pgErr == nil && strings.HasSuffix(c.epilogue, "COMMIT") && last.String() != "COMMIT" {
				pgErr = fmt.Errorf("the load's transaction did not commit (%s)", last)
			}
			c.epilogueErr = pgErr
			return nil
		case 'N', 'S', 'A':
		default:
			return fmt.Errorf("unexpected message %q from the server after COPY", typ)
		}
	}
}

// fail ends the COPY with CopyFail: the server rolls it back.
func (c *copyIn) fail(why string) {
	var err error
	if c.done == nil {
		msg, _ := (&pgproto3.CopyFail{Message: why}).Encode(nil)
		_, err = c.conn.Write(msg)
	}
	c.end(err)
}

// end waits for the answer; the session stays usable if it came in order.
func (c *copyIn) end(writeErr error) (pgconn.CommandTag, error) {
	if writeErr != nil {
		writeErr = c.settle(writeErr)
	} else if c.done == nil {
		res := <-c.answer
		c.done = &res
	}
	res := *c.done
	if c.epilogue != "" && writeErr == nil && usable(res.err) {
		// The reader stopped at the COPY's ReadyForQuery; the epilogue's
		// answer follows on the same connection.
		if err := c.readEpilogue(); err != nil {
			writeErr = err
		}
	}
	broken := !c.stop() || writeErr != nil || !usable(res.err)
	if broken {
		c.pg.Close(context.Background())
	}
	switch {
	case broken && c.ctx.Err() != nil:
		return pgconn.CommandTag{}, c.ctx.Err()
	case serverSaid(res.err):
		return pgconn.CommandTag{}, res.err // the server's reason says most
	case writeErr != nil:
		return pgconn.CommandTag{}, writeErr
	case res.err != nil:
		return pgconn.CommandTag{}, res.err
	}
	return res.tag, nil
}

// maxMessage bounds a backend message's length: a COPY row is built in one
// server buffer, which cannot pass 1 GB (MaxAllocSize).
const maxMessage = 1<<30 + 1<<16

// msgReader reads backend messages off a connection through a buffer of
// its own.
type msgReader struct {
	conn net.Conn
	buf  []byte
	r, w int // buf[r:w] is read and not yet taken
}

// next returns the next message's type and body; the body is valid until
// the next call.
func (m *msgReader) next() (byte, []byte, error) {
	for {
		need := 5 // a message's type and length, then all of it
		if m.w-m.r >= 5 {
			size := int(binary.BigEndian.Uint32(m.buf[m.r+1:]))
			if size < 4 || size > maxMessage {
				return 0, nil, fmt.Errorf("invalid message length %d from the server", size)
			}
			if end := m.r + 1 + size; end <= m.w {
				typ, body := m.buf[m.r], m.buf[m.r+5:end]
				m.r = end
				return typ, body, nil
			}
			need = 1 + size
			if need > len(m.buf) && m.w-m.r == len(m.buf) {
				// A row bigger than the buffer, which its start fills: the
				// buffer doubles as the row arrives, so a length the bytes
				// never follow costs no more than the bytes that came.
				grown := make([]byte, min(need, max(2*len(m.buf), 8<<10)))
				m.w = copy(grown, m.buf[m.r:m.w])
				m.r, m.buf = 0, grown
			}
		}
		if m.r == m.w {
			m.r, m.w = 0, 0
		} else if len(m.buf)-m.r < need {
			// The message read in part does not fit where it starts.
			m.w = copy(m.buf, m.buf[m.r:m.w])
			m.r = 0
		}
		n, err := m.conn.Read(m.buf[m.w:])
		m.w += n
		if err != nil && n == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, nil, err
		}
	}
}
