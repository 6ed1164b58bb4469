package pgserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5"
)

const (
	stateFile = "server.json"
	logName   = "server.log"
	confName  = "pgmove.conf"
	// maxSocketPath is sizeof(sockaddr_un.sun_path) less the trailing NUL.
	maxSocketPath = 107
)

// Options says what server Start makes.
type Options struct {
	Major     int               // 13..18
	Root      string            // parent of the server's directory; default ${PGMOVE_RUN_DIR:-/var/tmp/pgmove-run}
	Name      string            // used in the directory name, e.g. "pg-meta"; default "pg"
	Port      int               // 0 = pick a free loopback port
	Superuser string            // default "postgres"
	Password  string            // superuser password; required (scram-sha-256 for host connections)
	Settings  map[string]string // extra postgresql.conf settings, override the defaults; values unquoted
	HBA       []string          // extra pg_hba.conf lines placed before the defaults
	Keep      bool              // when true Stop leaves the data dir (sandbox use)
}

// Server is a local server started by Start or found again by Attach.
//
// Its files live in one directory per server, <Root>/<Name>-<random>/:
// data/ (the data dir, also the unix socket dir), server.log and server.json.
type Server struct {
	Major     int
	Version   string // server_version, read after start
	Host      string // "127.0.0.1"
	Port      int
	DataDir   string
	BinDir    string
	LogFile   string
	Superuser string
	Password  string // empty after Attach: it is never stored

	dir      string              // parent of DataDir
	keep     bool                // Stop leaves dir in place
	settings map[string]string   // what pgmove.conf holds
	cred     *syscall.Credential // nil: run the tools as the current user
}

// state is what server.json holds: enough for Attach, never the password.
type state struct {
	Major     int               `json:"major"`
	Version   string            `json:"version"`
	Port      int               `json:"port"`
	BinDir    string            `json:"bin_dir"`
	Superuser string            `json:"superuser"`
	Keep      bool              `json:"keep"`
	Settings  map[string]string `json:"settings"`
	OwnerPID  int               `json:"owner_pid"` // the process that started it, for Reap
}

// RunDir is the default parent of server directories: ${PGMOVE_RUN_DIR:-/var/tmp/pgmove-run}.
// It is short on purpose: the unix socket lives in the data dir.
func RunDir() string {
	if d := os.Getenv("PGMOVE_RUN_DIR"); d != "" {
		return d
	}
	return "/var/tmp/pgmove-run"
}

// Start creates a data dir with initdb, configures it for logical replication
// and starts it with pg_ctl. On any failure it removes what it created.
func Start(ctx context.Context, o Options) (*Server, error) {
	s, err := start(ctx, o)
	if err != nil {
		return nil, fmt.Errorf("postgresql %d server %q: %w", o.Major, o.Name, err)
	}
	return s, nil
}

func start(ctx context.Context, o Options) (_ *Server, err error) {
	if o.Password == "" || strings.ContainsAny(o.Password, "\r\n") {
		return nil, errors.New("options: a one-line superuser password is required")
	}
	if err := checkSettings(o.Settings); err != nil {
		return nil, err
	}
	if _, ok := o.Settings["port"]; ok {
		return nil, errors.New("options: set Options.Port, not the port setting")
	}
	if o.Name == "" {
		o.Name = "pg"
	}
	if strings.ContainsAny(o.Name, "/\x00") {
		return nil, fmt.Errorf("options: name %q contains a slash", o.Name)
	}
	if o.Superuser == "" {
		o.Superuser = "postgres"
	}
	if o.Root == "" {
		o.Root = RunDir()
	}
	bin, err := BinDir(o.Major)
	if err != nil {
		return nil, err
	}
	cred, err := runCredential()
	if err != nil {
		return nil, err
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	if err := makeRoot(root, cred); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(root, o.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("server dir: %w", err)
	}
	s := &Server{
		Major:     o.Major,
		Host:      "127.0.0.1",
		DataDir:   filepath.Join(dir, "data"),
		BinDir:    bin,
		LogFile:   filepath.Join(dir, logName),
		Superuser: o.Superuser,
		Password:  o.Password,
		dir:       dir,
		keep:      o.Keep,
		cred:      cred,
	}
	defer func() {
		if err != nil {
			if s.Running() {
				_ = s.pgctl(context.Background(), "stop", "-D", s.DataDir, "-m", "immediate", "-w", "-t", "20")
			}
			_ = os.RemoveAll(dir)
		}
	}()
	if err := s.chown(dir); err != nil {
		return nil, err
	}
	if sock := filepath.Join(s.DataDir, ".s.PGSQL.65535"); len(sock) > maxSocketPath {
		return nil, fmt.Errorf("unix socket path %s is longer than %d bytes; use a shorter Root or PGMOVE_RUN_DIR", sock, maxSocketPath)
	}
	if err := s.initdb(ctx); err != nil {
		return nil, err
	}
	hba := slices.Concat([]string{"# Written by pgmove's pgserver."}, o.HBA, []string{
		"local all all trust",
		"host all all 127.0.0.1/32 scram-sha-256",
		"host replication all 127.0.0.1/32 scram-sha-256",
	})
	if err := s.writeFile(filepath.Join(s.DataDir, "pg_hba.conf"), []byte(strings.Join(hba, "\n")+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := appendFile(filepath.Join(s.DataDir, "postgresql.conf"), "\ninclude = '"+confName+"'\n"); err != nil {
		return nil, err
	}
	s.settings = defaultSettings(s.DataDir)
	maps.Copy(s.settings, o.Settings)
	if err := s.save(); err != nil { // now Reap can find it if we die while starting
		return nil, err
	}

	// A port picked here can be taken by someone else before the server binds it.
	for attempt := 1; ; attempt++ {
		s.Port = o.Port
		if s.Port == 0 {
			if s.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		s.settings["port"] = strconv.Itoa(s.Port)
		if err := s.writeConf(); err != nil {
			return nil, err
		}
		err = s.start(ctx, "start")
		if err == nil {
			break
		}
		if o.Port != 0 || attempt == 3 || !errors.Is(err, errPortInUse) {
			return nil, err
		}
	}
	if s.Version, err = s.readVersion(ctx); err != nil {
		return nil, err
	}
	if err := s.save(); err != nil {
		return nil, err
	}
	return s, nil
}

// Attach finds again a server that Start created with that data dir, from the
// server.json beside it. The password is not stored: set Password to connect over TCP.
func Attach(dataDir string) (*Server, error) {
	dataDir, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	dir := filepath.Dir(dataDir)
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("server state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("server state %s: %w", filepath.Join(dir, stateFile), err)
	}
	cred, err := runCredential()
	if err != nil {
		return nil, err
	}
	return &Server{
		Major:     st.Major,
		Version:   st.Version,
		Host:      "127.0.0.1",
		Port:      st.Port,
		DataDir:   dataDir,
		BinDir:    st.BinDir,
		LogFile:   filepath.Join(dir, logName),
		Superuser: st.Superuser,
		dir:       dir,
		keep:      st.Keep,
		settings:  st.Settings,
		cred:      cred,
	}, nil
}

// Reap stops and removes the servers under root (default RunDir) that were
// started without Keep by a process that no longer exists, such as a test
// binary killed by its timeout. It returns the data dirs it removed.
func Reap(root string) ([]string, error) {
	if root == "" {
		root = RunDir()
	}
	states, err := filepath.Glob(filepath.Join(root, "*", stateFile))
	if err != nil {
		return nil, fmt.Errorf("run dir: %w", err)
	}
	var reaped []string
	var errs []error
	for _, path := range states {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // removed meanwhile by its owner
		}
		var st state
		if json.Unmarshal(b, &st) != nil || st.Keep || st.OwnerPID <= 0 || processExists(st.OwnerPID) {
			continue
		}
		s, err := Attach(filepath.Join(filepath.Dir(path), "data"))
		if err == nil {
			err = s.Stop()
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		reaped = append(reaped, s.DataDir)
	}
	return reaped, errors.Join(errs...)
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Stop shuts the server down (fast, then immediate if that takes over 20 s)
// and removes its directory unless it was started with Keep.
func (s *Server) Stop() error {
	if s.Running() {
		ctx := context.Background()
		if err := s.pgctl(ctx, "stop", "-D", s.DataDir, "-m", "fast", "-w", "-t", "20"); err != nil {
			if err2 := s.pgctl(ctx, "stop", "-D", s.DataDir, "-m", "immediate", "-w", "-t", "20"); err2 != nil {
				return fmt.Errorf("server %s: %w", s.DataDir, errors.Join(err, err2))
			}
		}
	}
	if s.keep {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("server dir: %w", err)
	}
	return nil
}

// Remove stops the server and removes its directory, even when started with Keep.
func (s *Server) Remove() error {
	s.keep = false
	return s.Stop()
}

// Restart merges settings into the ones Start wrote (pgmove.conf, included
// from postgresql.conf) and restarts the server so that all of them apply.
func (s *Server) Restart(ctx context.Context, settings map[string]string) error {
	if err := checkSettings(settings); err != nil {
		return err
	}
	if p, ok := settings["port"]; ok && p != strconv.Itoa(s.Port) {
		return errors.New("settings: the port of a server cannot change")
	}
	merged := maps.Clone(s.settings)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, settings)
	s.settings = merged
	if err := s.writeConf(); err != nil {
		return err
	}
	if err := s.save(); err != nil {
		return err
	}
	if err := s.start(ctx, "restart"); err != nil {
		return fmt.Errorf("server %s: %w", s.DataDir, err)
	}
	return nil
}

// Running reports whether the server's postmaster is up (pg_ctl status).
func (s *Server) Running() bool {
	return s.command(context.Background(), "pg_ctl", "status", "-D", s.DataDir).Run() == nil
}

// LogTail returns the last n lines of the server log, for test failure messages.
func (s *Server) LogTail(n int) string {
	f, err := os.Open(s.LogFile)
	if err != nil {
		return fmt.Sprintf("(no server log: %v)", err)
	}
	defer f.Close()
	const max = 256 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(server log: %v)", err)
	}
	return lastLines(string(b), n)
}

// DSN returns a libpq keyword/value connection string for db over TCP,
// without the password (use PGPASSFILE or ConnConfig).
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable",
		s.Host, s.Port, quoteDSN(s.Superuser), quoteDSN(db))
}

// ConnConfig returns a pgx config for db over TCP as the superuser, password included.
func (s *Server) ConnConfig(db string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(s.DSN(db))
	if err != nil {
		return nil, fmt.Errorf("connection config: %w", err)
	}
	cfg.Password = s.Password
	return cfg, nil
}

func defaultSettings(dataDir string) map[string]string {
	return map[string]string{
		"listen_addresses":                  "127.0.0.1",
		"unix_socket_directories":           dataDir,
		"wal_level":                         "logical",
		"max_replication_slots":             "20",
		"max_wal_senders":                   "20",
		"max_logical_replication_workers":   "8",
		"max_worker_processes":              "16",
		"max_sync_workers_per_subscription": "4",
		"fsync":                             "off",
		"synchronous_commit":                "off",
		"full_page_writes":                  "off",
		"shared_buffers":                    "64MB",
		"max_connections":                   "100",
		"log_min_messages":                  "warning",
		"log_line_prefix":                   "%m [%p] %e ",
		"lc_messages":                       "C",
	}
}

// checkSettings refuses names and values that could break out of their line in postgresql.conf.
func checkSettings(settings map[string]string) error {
	for k, v := range settings {
		if k == "" || strings.IndexFunc(k, func(r rune) bool {
			return !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
		}) >= 0 {
			return fmt.Errorf("settings: bad setting name %q", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return fmt.Errorf("settings: value of %s spans lines", k)
		}
	}
	return nil
}

// confValue quotes a value for postgresql.conf; every setting accepts a
// quoted value. A value that is already quoted is kept as it is.
func confValue(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

func quoteDSN(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func (s *Server) writeConf() error {
	var b strings.Builder
	b.WriteString("# Written by pgmove's pgserver; Restart rewrites it.\n")
	for _, k := range slices.Sorted(maps.Keys(s.settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, confValue(s.settings[k]))
	}
	return s.writeFile(filepath.Join(s.DataDir, confName), []byte(b.String()), 0o600)
}

func (s *Server) save() error {
	b, err := json.MarshalIndent(state{
		Major:     s.Major,
		Version:   s.Version,
		Port:      s.Port,
		BinDir:    s.BinDir,
		Superuser: s.Superuser,
		Keep:      s.keep,
		Settings:  s.settings,
		OwnerPID:  os.Getpid(),
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("server state: %w", err)
	}
	return s.writeFile(filepath.Join(s.dir, stateFile), append(b, '\n'), 0o644)
}

// initdb runs initdb with the password in a short-lived 0600 file, never in argv.
func (s *Server) initdb(ctx context.Context) error {
	pw, err := os.CreateTemp(s.dir, ".pwfile-")
	if err != nil {
		return fmt.Errorf("password file: %w", err)
	}
	defer os.Remove(pw.Name())
	_, err = pw.WriteString(s.Password + "\n")
	if cerr := pw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.chown(pw.Name())
	}
	if err != nil {
		return fmt.Errorf("password file: %w", err)
	}
	var out []byte
	// C.UTF-8 sorts like C but knows UTF-8 character classes; not every libc has it.
	for _, locale := range []string{"C.UTF-8", "C"} {
		_ = os.RemoveAll(s.DataDir)
		out, err = s.command(ctx, "initdb", "-D", s.DataDir, "-U", s.Superuser, "--pwfile="+pw.Name(),
			"--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale="+locale, "--no-sync").CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte("locale")) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("initdb: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

var errPortInUse = errors.New("port in use")

// start runs pg_ctl start or restart and, on failure, returns the log lines
// the attempt wrote.
func (s *Server) start(ctx context.Context, action string) error {
	var off int64
	if fi, err := os.Stat(s.LogFile); err == nil {
		off = fi.Size()
	}
	args := []string{action, "-D", s.DataDir, "-l", s.LogFile, "-w", "-t", "60"}
	if action == "restart" {
		args = append(args, "-m", "fast")
	}
	err := s.pgctl(ctx, args...)
	if err == nil {
		return nil
	}
	var log string
	if f, ferr := os.Open(s.LogFile); ferr == nil {
		if _, ferr := f.Seek(off, io.SeekStart); ferr == nil {
			b, _ := io.ReadAll(f)
			log = string(b)
		}
		f.Close()
	}
	// lc_messages is C, so the postmaster's bind error is in English.
	if strings.Contains(log, "Address already in use") {
		err = fmt.Errorf("%w: %w", errPortInUse, err)
	}
	return fmt.Errorf("%w\nserver log:\n%s", err, lastLines(log, 20))
}

func (s *Server) readVersion(ctx context.Context) (string, error) {
	// Over the unix socket, where the superuser is trusted.
	conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable connect_timeout=20 application_name=pgmove/pgserver",
		quoteDSN(s.DataDir), s.Port, quoteDSN(s.Superuser)))
	if err != nil {
		return "", fmt.Errorf("connect over unix socket: %w", err)
	}
	defer conn.Close(context.Background())
	var v string
	if err := conn.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil {
		return "", fmt.Errorf("server version: %w", err)
	}
	return v, nil
}

func (s *Server) pgctl(ctx context.Context, args ...string) error {
	out, err := s.command(ctx, "pg_ctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w: %s", args[0], err, bytes.TrimSpace(out))
	}
	return nil
}

// command builds a server tool's command, run as the postgres OS user when we are root.
func (s *Server) command(ctx context.Context, tool string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.BinDir, tool), args...)
	cmd.Dir = s.dir // the postgres user may not be able to reach our working dir
	cmd.Env = childEnv()
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd
}

// childEnv is our environment less what could point the tools elsewhere
// (PGDATA, PGPORT, ...) or change their language.
func childEnv() []string {
	env := []string{"LC_ALL=C"}
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// runCredential returns the postgres OS user's credential when we are root
// (initdb and postgres refuse to run as root), else nil.
func runCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("os user postgres, needed to run servers as root: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("os user postgres uid: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("os user postgres gid: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeRoot creates the run dir, mode 0755, owned by the user the servers run as.
func makeRoot(root string, cred *syscall.Credential) error {
	if _, err := os.Stat(root); err == nil {
		return nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		return fmt.Errorf("run dir: %w", err)
	}
	if cred != nil {
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("run dir: %w", err)
		}
	}
	return nil
}

func (s *Server) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
		return fmt.Errorf("file owner: %w", err)
	}
	return nil
}

func (s *Server) writeFile(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("write file: %w", err)
	}
	return s.chown(path)
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("append file: %w", err)
	}
	_, err = f.WriteString(text)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append file: %w", err)
	}
	return nil
}

// freePort asks the kernel for a free loopback port. Another process may take
// it before the server binds it; Start retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
