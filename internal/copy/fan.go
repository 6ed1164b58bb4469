package copy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/cluster"
	"github.com/pgmove/pgmove/internal/config"
)

// A fan copy reads a table once from the source and deals its rows out, in
// batches of whole rows, to several target sessions, each loading its share
// with a COPY of its own inside an open transaction. The sessions commit
// only once every one of them has loaded its share, so until then a
// failure rolls all of them back and the table is copied again.

// batchSize is the size of the batches of whole rows dealt to the target
// sessions: big enough that a batch costs nothing to hand over, small
// enough that the sessions get even shares and memory stays low.
const batchSize = 256 << 10

// binarySignature opens every binary COPY stream.
var binarySignature = []byte("PGCOPY\n\377\r\n\000")

// binaryTrailer closes a binary COPY stream: a field count of -1.
var binaryTrailer = []byte{0xff, 0xff}

// permanent marks a failure that a retry inside this run cannot mend.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// dealer is the io.Writer the source's COPY writes to. It cuts the stream
// at row boundaries into batches that whichever target session is free
// takes next.
type dealer struct {
	binary  bool
	batches chan []byte // full batches, for any session
	free    chan []byte // spent batches, to fill again
	stop    <-chan struct{}
	counted *atomic.Int64
	sent    int64 // bytes handed over, taken back from counted if the copy fails

	buf    []byte // the batch being filled
	rows   int    // buf[:rows] holds whole rows
	header []byte // the binary header, sent by each session first
	ended  bool   // the binary trailer was seen

	mu  sync.Mutex
	err error // why the source stopped, read once batches is closed
}

func newDealer(binaryFormat bool, sessions int, stop <-chan struct{}, counted *atomic.Int64) *dealer {
	return &dealer{
		binary:  binaryFormat,
		batches: make(chan []byte, sessions),
		free:    make(chan []byte, 2*sessions+1),
		stop:    stop,
		counted: counted,
		buf:     make([]byte, 0, batchSize+batchSize/4),
	}
}

// Write takes the next bytes of the COPY stream, in any pieces.
func (d *dealer) Write(p []byte) (int, error) {
	if d.ended {
		return len(p), nil
	}
	d.buf = append(d.buf, p...)
	if d.binary {
		if err := d.scanBinary(); err != nil {
			return 0, err
		}
	} else if len(d.buf) >= batchSize {
		d.rows = bytes.LastIndexByte(d.buf, '\n') + 1
	}
	if d.rows >= batchSize {
		if err := d.send(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// scanBinary reads the header once, then advances d.rows over every whole
// row in d.buf: a field count, then each field's length and bytes.
func (d *dealer) scanBinary() error {
	if d.header == nil {
		if len(d.buf) < 19 {
			return nil
		}
		if !bytes.Equal(d.buf[:11], binarySignature) {
			return errors.New("source: binary COPY stream without its signature")
		}
		n := 19 + int(binary.BigEndian.Uint32(d.buf[15:19]))
		if len(d.buf) < n {
			return nil
		}
		d.header = append([]byte(nil), d.buf[:n]...)
		d.buf = append(d.buf[:0], d.buf[n:]...)
	}
	b := d.buf
	for off := d.rows; len(b)-off >= 2; {
		fields := int16(binary.BigEndian.Uint16(b[off:]))
		if fields == -1 {
			d.ended = true
			d.buf = d.buf[:d.rows]
			return nil
		}
		end := off + 2
		for i := 0; i < int(fields) && end >= 0; i++ {
			if len(b)-end < 4 {
				end = -1
				break
			}
			if l := int32(binary.BigEndian.Uint32(b[end:])); l > 0 {
				end += 4 + int(l)
			} else {
				end += 4
			}
			if end > len(b) {
				end = -1
			}
		}
		if end < 0 {
			return nil // the row goes on in the next piece
		}
		off = end
		d.rows = off
	}
	return nil
}

// send hands the whole rows over to the sessions and keeps the rest.
func (d *dealer) send() error {
	if d.rows == 0 {
		return nil
	}
	full := d.buf[:d.rows]
	var next []byte
	select {
	case next = <-d.free:
	default:
		next = make([]byte, 0, batchSize+batchSize/4)
	}
	d.buf = append(next[:0], d.buf[d.rows:]...)
	d.rows = 0
	if d.binary {
		// The rows left over are incomplete: scanning starts again at 0.
		if err := d.scanBinary(); err != nil {
			return err
		}
	}
	select {
	case d.batches <- full:
		d.counted.Add(int64(len(full)))
		d.sent += int64(len(full))
		return nil
	case <-d.stop:
		return errTargetStopped
	}
}

// finish sends what is left once the source's COPY is done.
func (d *dealer) finish() error {
	if d.binary {
		if d.header == nil {
			return errors.New("source: binary COPY stream ended before its header")
		}
		if !d.ended && len(d.buf) > 0 {
			return errors.New("source: binary COPY stream ended inside a row")
		}
	} else {
		d.rows = len(d.buf)
	}
	return d.send()
}

// close ends the stream for every session, with the source's error if any.
func (d *dealer) close(err error) {
	d.mu.Lock()
	d.err = err
	d.mu.Unlock()
	close(d.batches)
}

func (d *dealer) sourceErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

func (d *dealer) recycle(b []byte) {
	if cap(b) > 2*batchSize {
		return // a batch grown by a huge row is not kept
	}
	select {
	case d.free <- b[:0]:
	default:
	}
}

// share is one target session's side of a fan copy: a complete COPY stream
// of the batches it takes.
type share struct {
	d       *dealer
	pending [][]byte
	held    []byte // the batch being read, recycled once read
	started bool
	eof     bool
}

func (s *share) Read(p []byte) (int, error) {
	for len(s.pending) == 0 {
		if s.held != nil {
			s.d.recycle(s.held)
			s.held = nil
		}
		if s.eof {
			return 0, io.EOF
		}
		b, ok := <-s.d.batches
		if !ok {
			if err := s.d.sourceErr(); err != nil {
				return 0, err
			}
			s.eof = true
		}
		if s.d.binary && !s.started {
			s.pending = append(s.pending, s.d.header)
		}
		s.started = true
		if ok {
			s.pending = append(s.pending, b)
			s.held = b
		} else if s.d.binary {
			s.pending = append(s.pending, binaryTrailer)
		}
	}
	n := copy(p, s.pending[0])
	if s.pending[0] = s.pending[0][n:]; len(s.pending[0]) == 0 {
		s.pending = s.pending[1:]
	}
	return n, nil
}

// copyFan copies a whole table read once from the source into t.Fan target
// sessions: this worker's and t.Fan-1 more, opened for the table.
func (w *worker) copyFan(ctx context.Context, j job, binaryFormat bool) (int64, error) {
	t := j.t
	sessions := []*pgconn.PgConn{w.dst}
	defer func() {
		for _, c := range sessions[1:] {
			c.Close(context.Background())
		}
	}()
	for len(sessions) < t.Fan {
		c, err := openTarget(ctx, w.m, "copy")
		if err != nil {
			return 0, err
		}
		sessions = append(sessions, c)
	}
	rollback := func() {
		w.abandon()
		for _, c := range sessions[1:] {
			c.Close(context.Background())
		}
		sessions = sessions[:1]
	}
	for _, c := range sessions {
		if _, err := c.Exec(ctx, "BEGIN").ReadAll(); err != nil {
			rollback()
			return 0, cluster.Wrap(config.Target, "begin "+t.Name, err)
		}
	}

	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := newDealer(binaryFormat, len(sessions), fctx.Done(), &j.st.bytes)
	srcErr := make(chan error, 1)
	go func() {
		_, err := w.src.CopyTo(fctx, d, t.copyOut(j.chunk, binaryFormat))
		if err == nil {
			err = d.finish()
		}
		if err != nil && !errors.Is(err, errTargetStopped) {
			err = cluster.Wrap(config.Source, "copy "+t.Name+" out", err)
		}
		d.close(err)
		srcErr <- err
	}()
	type result struct {
		rows int64
		err  error
	}
	results := make(chan result, len(sessions))
	for _, c := range sessions {
		go func() {
			tag, err := c.CopyFrom(fctx, &share{d: d}, t.copyIn(binaryFormat, false))
			if err != nil {
				cancel() // the other sessions and the source stop too
			}
			results <- result{tag.RowsAffected(), err}
		}()
	}
	var rows int64
	var dstErr error
	for range sessions {
		r := <-results
		rows += r.rows
		if r.err != nil && dstErr == nil {
			dstErr = r.err
		}
	}
	sErr := <-srcErr
	if sErr != nil || dstErr != nil {
		d.counted.Add(-d.sent) // the retry sends them again
	}
	switch {
	case sErr != nil && !errors.Is(sErr, errTargetStopped) && !errors.Is(sErr, context.Canceled):
		rollback()
		return 0, sErr
	case dstErr != nil:
		rollback()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, cluster.Wrap(config.Target, "copy "+t.Name+" in", dstErr)
	case sErr != nil:
		rollback()
		return 0, sErr
	}
	for i, c := range sessions {
		if _, err := c.Exec(ctx, "COMMIT").ReadAll(); err != nil {
			rollback()
			d.counted.Add(-d.sent)
			err = cluster.Wrap(config.Target, "commit "+t.Name, err)
			if i > 0 {
				// Part of the table is in: only a fresh copy mends that.
				return 0, permanent{fmt.Errorf("%w (%d of %d sessions had committed their share; rerun pgmove: the copy restarts from a new slot)", err, i, len(sessions))}
			}
			return 0, err
		}
	}
	return rows, nil
}
