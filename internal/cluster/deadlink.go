package cluster

import (
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgmove/pgmove/internal/config"
)

// A connection whose network path dies (a cut cable, a firewall that drops
// the flow, a host gone) gets no error from the kernel for a long time: a
// socket with data in flight retransmits for about 15 minutes
// (tcp_retries2), an idle one, with Linux's defaults, waits 2 hours before
// its first keepalive. pgmove's sessions and the server backends serving
// them would hang that long, the backends holding their locks. So every
// connection pgmove makes, and the server's end of it, gives up after
// DeadLink of silence: TCP keepalives probe an idle link, and
// TCP_USER_TIMEOUT bounds data left unacknowledged. A link that comes back
// sooner (a switch rebooting, a cut of 30 s) costs nothing: the kernel
// retransmits and the sessions go on.
//
// A user's own libpq settings win: keepalives, keepalives_idle,
// keepalives_interval, keepalives_count and tcp_user_timeout in the
// connection string (src_url, dst_url, sub_conn) are applied to pgmove's
// sockets as libpq applies them, and passed on to pg_dump and pg_restore.
const (
	DeadLink          = 60 * time.Second
	keepaliveIdle     = 10 * time.Second
	keepaliveInterval = 10 * time.Second
	keepaliveCount    = 6
)

// linkKeys are libpq's connection keys for dead-link detection. All but
// tcp_user_timeout, which is a server setting of the same name too, would
// be refused by the server.
var linkKeys = []string{"keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count", "tcp_user_timeout"}

// linkSettings are the dead-link bounds of one endpoint.
type linkSettings struct {
	keepalives         bool
	idle, interval     time.Duration
	count              int
	userTimeout        time.Duration // 0: the kernel's default
	userTimeoutDefault bool          // not set by the user
}

// linkOf reads the endpoint's libpq keys over pgmove's defaults.
func linkOf(ep config.Endpoint) (linkSettings, error) {
	l := linkSettings{keepalives: true, idle: keepaliveIdle, interval: keepaliveInterval, count: keepaliveCount, userTimeout: DeadLink, userTimeoutDefault: true}
	num := func(key string) (int, bool, error) {
		v, ok := ep.Conninfo[key]
		if !ok || v == "" {
			return 0, false, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, false, fmt.Errorf("%s: connection settings: %s=%q is not a non-negative whole number", ep.Side, key, v)
		}
		return n, true, nil
	}
	if n, ok, err := num("keepalives"); err != nil {
		return l, err
	} else if ok {
		l.keepalives = n != 0
	}
	// libpq: 0 for the three keepalive settings means the system default.
	if n, ok, err := num("keepalives_idle"); err != nil {
		return l, err
	} else if ok {
		l.idle = time.Duration(n) * time.Second
	}
	if n, ok, err := num("keepalives_interval"); err != nil {
		return l, err
	} else if ok {
		l.interval = time.Duration(n) * time.Second
	}
	if n, ok, err := num("keepalives_count"); err != nil {
		return l, err
	} else if ok {
		l.count = n
	}
	if n, ok, err := num("tcp_user_timeout"); err != nil {
		return l, err
	} else if ok {
		l.userTimeout, l.userTimeoutDefault = time.Duration(n)*time.Millisecond, false
	}
	return l, nil
}

// applyLink sets cfg's dialer and the server's end of the connection to
// the endpoint's dead-link bounds, and takes libpq's client-only keys out
// of the server settings pgx would otherwise send.
func applyLink(cfg *pgx.ConnConfig, ep config.Endpoint) error {
	for _, k := range linkKeys {
		delete(cfg.RuntimeParams, k)
	}
	l, err := linkOf(ep)
	if err != nil {
		return err
	}
	d := &net.Dialer{Timeout: cfg.ConnectTimeout}
	if l.keepalives {
		d.KeepAliveConfig = net.KeepAliveConfig{Enable: true, Idle: orSystem(l.idle), Interval: orSystem(l.interval), Count: l.count}
		if l.count == 0 {
			d.KeepAliveConfig.Count = -1
		}
	} else {
		d.KeepAlive = -1
	}
	if l.userTimeout > 0 {
		ms := int(l.userTimeout / time.Millisecond)
		d.Control = func(network, address string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpUserTimeout, ms)
			}); err != nil {
				return err
			}
			if serr != nil && network != "unix" {
				return fmt.Errorf("set TCP_USER_TIMEOUT: %w", serr)
			}
			return nil
		}
	}
	cfg.DialFunc = d.DialContext
	// The server's end: a backend whose pgmove is gone behind a dead link
	// ends (its transaction rolled back, its locks released) instead of
	// waiting hours, so that a rerun does not queue behind it. These are
	// user-settable server settings (tcp_user_timeout since 12); on a unix
	// socket the server ignores them.
	if l.keepalives {
		cfg.RuntimeParams["tcp_keepalives_idle"] = strconv.Itoa(int(l.idle / time.Second))
		cfg.RuntimeParams["tcp_keepalives_interval"] = strconv.Itoa(int(l.interval / time.Second))
		cfg.RuntimeParams["tcp_keepalives_count"] = strconv.Itoa(l.count)
	}
	cfg.RuntimeParams["tcp_user_timeout"] = strconv.Itoa(int(l.userTimeout / time.Millisecond))
	return nil
}

// childLink adds pgmove's dead-link bounds to a child's (pg_dump's,
// pg_restore's) libpq connection string where the user set none.
func childLink(ci config.Conninfo) {
	defaults := map[string]string{
		"keepalives":          "1",
		"keepalives_idle":     strconv.Itoa(int(keepaliveIdle / time.Second)),
		"keepalives_interval": strconv.Itoa(int(keepaliveInterval / time.Second)),
		"keepalives_count":    strconv.Itoa(keepaliveCount),
		"tcp_user_timeout":    strconv.Itoa(int(DeadLink / time.Millisecond)),
	}
	for k, v := range defaults {
		if _, ok := ci[k]; !ok {
			ci[k] = v
		}
	}
}

// childServerLink is the PGOPTIONS that gives a child's server backend the
// same bounds as pgmove's own sessions.
func childServerLink(ep config.Endpoint) string {
	l, err := linkOf(ep)
	if err != nil {
		return ""
	}
	s := fmt.Sprintf("-c tcp_user_timeout=%d", int(l.userTimeout/time.Millisecond))
	if l.keepalives {
		s += fmt.Sprintf(" -c tcp_keepalives_idle=%d -c tcp_keepalives_interval=%d -c tcp_keepalives_count=%d", int(l.idle/time.Second), int(l.interval/time.Second), l.count)
	}
	return s
}

// orSystem maps libpq's 0 ("the system default") to net's -1 (leave it).
func orSystem(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

// tcpUserTimeout is TCP_USER_TIMEOUT (linux/tcp.h), which package syscall
// does not name.
const tcpUserTimeout = 0x12
