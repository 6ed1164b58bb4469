package cluster

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgmove/pgmove/internal/config"
)

// Conn is a connection to one side, with the facts every step needs.
type Conn struct {
	*pgx.Conn
	Side       config.Side
	Endpoint   config.Endpoint
	VersionNum int    // server_version_num, e.g. 150018
	Version    string // server_version, e.g. "15.18 (Debian 15.18-0+deb12u1)"
	User       string // current_user
	Superuser  bool
	// SystemID is the cluster's system identifier (pg_control_system()):
	// the same for a primary and its physical standbys, different for
	// every initdb. With DBOID it names the database pgmove talks to, so a
	// journal, a copy ledger or a refusal can tell one database from another
	// even at the same address.
	SystemID   int64
	DBOID      uint32
	InRecovery bool // a physical standby
}

// Identity names the database: system identifier and database OID.
func (c *Conn) Identity() string { return fmt.Sprintf("%d/%d", c.SystemID, c.DBOID) }

// SameDatabase reports whether a and b are connections to one database.
func SameDatabase(a, b *Conn) bool {
	return a != nil && b != nil && a.SystemID == b.SystemID && a.DBOID == b.DBOID
}

// Major is the server's major version (13, 14, ...).
func (c *Conn) Major() int { return c.VersionNum / 10000 }

// Config parses an endpoint into a pgx config, resolving the password the way
// libpq does, and names the connection pgmove/<app> in pg_stat_activity.
func Config(ep config.Endpoint, app string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(ep.ConnString())
	if err != nil {
		return nil, fmt.Errorf("%s: connection settings: %s", ep.Side, OneLine(err.Error()))
	}
	if _, ok := ep.Conninfo["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "pgmove/" + app
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	// Session settings every pgmove statement relies on: no surprise timeout
	// on a long COPY or index build, output formats pinned.
	cfg.RuntimeParams["statement_timeout"] = "0"
	cfg.RuntimeParams["idle_in_transaction_session_timeout"] = "0"
	cfg.RuntimeParams["lock_timeout"] = "0"
	cfg.RuntimeParams["client_encoding"] = "UTF8"
	return cfg, nil
}

// Connect opens a connection to one side and reads its version and role.
// Every failure comes back as one line that names the side and the fix.
func Connect(ctx context.Context, ep config.Endpoint, app string) (*Conn, error) {
	cfg, err := Config(ep, app)
	if err != nil {
		return nil, err
	}
	return ConnectConfig(ctx, ep, cfg)
}

// ConnectConfig is Connect with a prepared config.
func ConnectConfig(ctx context.Context, ep config.Endpoint, cfg *pgx.ConnConfig) (*Conn, error) {
	pc, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, ExplainConnect(ep, cfg.User, err)
	}
	c := &Conn{Conn: pc, Side: ep.Side, Endpoint: ep}
	// pg_control_system() exists since 9.6 and is executable by every role.
	err = pc.QueryRow(ctx, `SELECT current_setting('server_version_num')::int, current_setting('server_version'),
		current_user, (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user),
		(SELECT system_identifier FROM pg_catalog.pg_control_system()),
		(SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()),
		pg_catalog.pg_is_in_recovery()`).
		Scan(&c.VersionNum, &c.Version, &c.User, &c.Superuser, &c.SystemID, &c.DBOID, &c.InRecovery)
	if err != nil {
		pc.Close(context.Background())
		return nil, Wrap(ep.Side, "read server version", err)
	}
	return c, nil
}

// Close closes the connection, ignoring errors: there is nothing to do about them.
func (c *Conn) Close() {
	if c != nil && c.Conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Conn.Close(ctx)
	}
}

// Setting reads one server setting.
func (c *Conn) Setting(ctx context.Context, name string) (string, error) {
	var v string
	if err := c.QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err != nil {
		return "", c.Wrap("read setting "+name, err)
	}
	return v, nil
}

// Wrap names the side and the action in a server error.
func (c *Conn) Wrap(action string, err error) error { return Wrap(c.Side, action, err) }

// Wrap turns an error from one side into "side: action: message", one line,
// with a hint for the server errors a DBA can act on.
func Wrap(side config.Side, action string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		msg := pe.Message
		if pe.Detail != "" {
			msg += " (" + pe.Detail + ")"
		}
		switch {
		case pe.Code == pgerrcode.InsufficientPrivilege:
			msg += "; grant the privilege to the role pgmove connects as, or connect as a superuser"
		case pe.Code == pgerrcode.ReadOnlySQLTransaction:
			msg += "; the server is read-only (a standby, or default_transaction_read_only is on): connect to the primary"
		case sessionEnded(pe.Code):
			msg += "; the server restarted or shut down: rerun when it is back"
		default:
			if pe.Hint != "" {
				msg += "; " + pe.Hint
			}
		}
		return &Error{Side: side, Msg: fmt.Sprintf("%s: %s: %s", side, action, OneLine(msg)), Code: pe.Code, Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Side: side, Msg: fmt.Sprintf("%s: %s: interrupted", side, action), Err: err}
	}
	var already *Error
	if errors.As(err, &already) && already.Side == side {
		return &Error{Side: side, Msg: fmt.Sprintf("%s: %s: %s", side, action, strings.TrimPrefix(already.Msg, string(side)+": ")), Code: already.Code, Err: err}
	}
	return &Error{Side: side, Msg: fmt.Sprintf("%s: %s: %s", side, action, OneLine(err.Error())), Err: err}
}

// Error is an error from one side, already worded for the user.
type Error struct {
	Side config.Side
	Msg  string
	Code string // SQLSTATE, when the server sent one
	// Problem is, for a failed connection, why in a few words ("login
	// failed", "no such database", "unreachable": no server answered).
	Problem string
	Err     error
}

// Problems of a failed connection (Error.Problem). Only Unreachable means
// that no server answered.
const (
	Unreachable   = "unreachable"
	LoginFailed   = "login failed"
	NoDatabase    = "no such database"
	ConnectFailed = "connection failed"
)

// ConnectProblem returns the Problem of a failed connection in err's chain,
// or "" when err is not one.
func ConnectProblem(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Problem
	}
	return ""
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// SessionEnded reports an error that ended the session: an administrator
// terminated it (pg_terminate_backend), or its server shut down or crashed.
func SessionEnded(err error) bool { return sessionEnded(SQLState(err)) }

func sessionEnded(code string) bool {
	return code == pgerrcode.AdminShutdown || code == pgerrcode.CrashShutdown
}

// SQLState returns the SQLSTATE of a server error anywhere in err's chain.
func SQLState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// ExplainConnect words a failed connection attempt: what went wrong, on which
// side, and the fix.
func ExplainConnect(ep config.Endpoint, user string, err error) error {
	side := ep.Side
	where := net.JoinHostPort(orLocal(ep.Host()), ep.Port())
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		var msg string
		problem := ConnectFailed
		switch pe.Code {
		case pgerrcode.InvalidPassword:
			problem = LoginFailed
			msg = fmt.Sprintf("password authentication failed for user %q at %s; put the right password in ~/.pgpass (%s:%s:%s:%s:<password>), PGPASSFILE or PGPASSWORD",
				user, where, orLocal(ep.Host()), ep.Port(), ep.DB, user)
		case pgerrcode.InvalidAuthorizationSpecification:
			problem = LoginFailed
			msg = fmt.Sprintf("the server at %s refused user %q (%s); check that the role exists and can log in, and that pg_hba.conf has a line for it from this host, e.g. host %s %s <this-host-ip>/32 scram-sha-256, then reload",
				where, user, OneLine(pe.Message), ep.DB, user)
		case pgerrcode.InvalidCatalogName:
			problem = NoDatabase
			msg = fmt.Sprintf("database %q does not exist at %s; create it, or set %s to an existing database", ep.DB, where, ep.DBKey())
		case pgerrcode.TooManyConnections:
			msg = fmt.Sprintf("the server at %s has no free connection slot (%s); raise max_connections or close idle sessions", where, OneLine(pe.Message))
		case pgerrcode.CannotConnectNow:
			msg = fmt.Sprintf("the server at %s is starting up or shutting down; retry when it accepts connections", where)
		default:
			msg = fmt.Sprintf("cannot connect to %s: %s", where, OneLine(pe.Message))
		}
		return &Error{Side: side, Msg: string(side) + ": " + msg, Code: pe.Code, Problem: problem, Err: err}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &Error{Side: side, Msg: fmt.Sprintf("%s: cannot resolve host %q; check %s", side, ep.Host(), ep.HostKey()), Problem: Unreachable, Err: err}
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return &Error{Side: side, Msg: fmt.Sprintf("%s: cannot reach %s (%s); check %s and that PostgreSQL is running and listening there (listen_addresses, firewall)", side, where, dialReason(opErr), ep.AddressKey()), Problem: Unreachable, Err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
		return &Error{Side: side, Msg: fmt.Sprintf("%s: no answer from %s within the connect timeout; check %s and firewalls", side, where, ep.AddressKey()), Problem: Unreachable, Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Side: side, Msg: fmt.Sprintf("%s: connect to %s: interrupted", side, where), Problem: ConnectFailed, Err: err}
	}
	// TLS: the server's certificate, or the client's, was not accepted.
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &hostErr):
		return &Error{Side: side, Msg: fmt.Sprintf("%s: the server certificate at %s does not name %q (sslmode=verify-full checks it): connect by a name or address the certificate holds, or have the certificate reissued", side, where, ep.Host()), Problem: ConnectFailed, Err: err}
	case errors.As(err, &authErr), errors.As(err, &invalid):
		why := err.Error()
		if i := strings.LastIndex(why, "x509: "); i >= 0 {
			why = why[i:]
		}
		return &Error{Side: side, Msg: fmt.Sprintf("%s: the server certificate at %s is not trusted (%s): set sslrootcert (or PGSSLROOTCERT) to the certificate authority that signed it", side, where, OneLine(why)), Problem: ConnectFailed, Err: err}
	}
	s := OneLine(err.Error())
	if strings.Contains(s, "password") {
		// pgx: the server asked for a password and none was found.
		return &Error{Side: side, Msg: fmt.Sprintf("%s: the server at %s asks a password for user %q and none was found; add it to ~/.pgpass (%s:%s:%s:%s:<password>), PGPASSFILE or PGPASSWORD",
			side, where, user, orLocal(ep.Host()), ep.Port(), ep.DB, user), Problem: LoginFailed, Err: err}
	}
	return &Error{Side: side, Msg: fmt.Sprintf("%s: cannot connect to %s: %s", side, where, s), Problem: ConnectFailed, Err: err}
}

func dialReason(e *net.OpError) string {
	s := e.Err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

func orLocal(h string) string {
	if h == "" {
		return "localhost"
	}
	return h
}

// OneLine puts a message on one line: newlines and runs of blanks become
// one blank (a server's multi-line message, a statement for the log).
func OneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// Runner executes the statements a step decides on, or only prints them
// under --dry-run, so a DBA can review exactly what pgmove would run.
type Runner struct {
	DryRun bool
	Out    io.Writer // where dry-run statements are printed
	// Record, when set, gets every statement run (or, under DryRun, that
	// would run) instead of its dry-run text on Out: --json reports them.
	Record func(Statement)
}

// Statement is one statement a step runs, as shown to the user (secrets
// masked).
type Statement struct {
	Side string `json:"side"`
	What string `json:"what"`
	SQL  string `json:"sql"`
}

// Exec runs (or prints) one statement on c. shown, when given, is what is
// printed and logged instead of sql, for statements that carry a secret.
func (r Runner) Exec(ctx context.Context, c *Conn, what, sql string, shown ...string) error {
	display := sql
	if len(shown) > 0 {
		display = shown[0]
	}
	if r.Record != nil {
		r.Record(Statement{Side: string(c.Side), What: what, SQL: display})
	}
	if r.DryRun {
		if r.Record == nil {
			fmt.Fprintf(r.Out, "-- %s: %s\n%s;\n", c.Side, what, display)
		}
		return nil
	}
	// A publication of thousands of tables would log a line of as many
	// names: the log shows a few; --dry-run prints the statement whole.
	slog.Info(string(c.Side)+": "+what, "sql", AbbreviateSQL(display))
	if _, err := c.Exec(ctx, sql); err != nil {
		return c.Wrap(what, err)
	}
	return nil
}

// ListSome joins the first n names and counts the rest: "a, b, c and 7 more".
func ListSome(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

// identList matches a list of more than listShown+1 identifiers, quoted and
// maybe schema-qualified, separated by commas: a FOR TABLE or TRUNCATE list.
var identList = regexp.MustCompile(`"(?:[^"]|"")*"(?:\."(?:[^"]|"")*")?(?:, "(?:[^"]|"")*"(?:\."(?:[^"]|"")*")?){4,}`)

// identOne matches one identifier of such a list.
var identOne = regexp.MustCompile(`"(?:[^"]|"")*"(?:\."(?:[^"]|"")*")?`)

const listShown = 3

// AbbreviateSQL shortens, for a log line, each list of many identifiers in
// sql to its first few and how many more: "a", "b", "c" and 1997 more.
// The statement itself is not changed; this is for reading only.
func AbbreviateSQL(sql string) string {
	return identList.ReplaceAllStringFunc(sql, func(list string) string {
		return ListSome(identOne.FindAllString(list, -1), listShown)
	})
}
