package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// PgBouncer is a pgbouncer started for a test or the sandbox: Debian's
// package, transaction pooling, on a free loopback port, clients trusted,
// the servers logged into with the password in its auth file.
type PgBouncer struct {
	Dir  string
	INI  string
	Port int
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	// detached: started with -d, ended through its pid file.
	detached bool
}

// BouncerOptions describe a pgbouncer to start.
type BouncerOptions struct {
	Name      string
	Databases map[string]string // entry name -> "host=... port=... dbname=..."
	User      string            // server login and admin user
	Password  string            // its password on the servers
	// Dir is where its files go (created for it); default a new directory
	// under RunDir().
	Dir string
	// AuthType is how clients log in: "" trusts them (tests);
	// "scram-sha-256" checks User's password in the auth file (the sandbox).
	AuthType string
	// Detach leaves it running when the process that started it ends (the
	// sandbox); StopPgBouncer(Dir) ends it.
	Detach bool
}

// StartPgBouncer writes a pgbouncer.ini and starts pgbouncer in the
// foreground (as the postgres OS user when we are root: it refuses root).
func StartPgBouncer(ctx context.Context, o BouncerOptions) (*PgBouncer, error) {
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			return nil, errors.New("pgbouncer not found; run scripts/install-deps (Debian's pgbouncer)")
		}
		bin = "/usr/sbin/pgbouncer"
	}
	cred, err := runCredential()
	if err != nil {
		return nil, err
	}
	root := RunDir()
	if err := makeRoot(root, cred); err != nil {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		dir, err = os.MkdirTemp(root, "pgbouncer-"+o.Name+"-")
	} else {
		err = os.Mkdir(dir, 0o700)
	}
	if err != nil {
		return nil, fmt.Errorf("pgbouncer dir: %w", err)
	}
	authType := o.AuthType
	if authType == "" {
		authType = "trust"
	}
	b := &PgBouncer{Dir: dir, INI: filepath.Join(dir, "pgbouncer.ini"), log: filepath.Join(dir, "pgbouncer.log"), done: make(chan struct{})}
	fail := func(err error) (*PgBouncer, error) {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgbouncer: %w", err)
	}
	if b.Port, err = freePort(); err != nil {
		return fail(err)
	}
	names := make([]string, 0, len(o.Databases))
	for n := range o.Databases {
		names = append(names, n)
	}
	sort.Strings(names)
	var ini strings.Builder
	ini.WriteString("[databases]\n")
	for _, n := range names {
		fmt.Fprintf(&ini, "%s = %s\n", n, o.Databases[n])
	}
	fmt.Fprintf(&ini, `
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = %s
auth_file = %s
admin_users = %s
pool_mode = transaction
default_pool_size = 20
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits,statement_timeout,lock_timeout,idle_in_transaction_session_timeout,client_encoding
logfile = %s
pidfile = %s
`, b.Port, authType, filepath.Join(dir, "userlist.txt"), o.User, b.log, filepath.Join(dir, "pgbouncer.pid"))
	userlist := fmt.Sprintf("%q %q\n", o.User, o.Password)
	for path, text := range map[string]string{b.INI: ini.String(), filepath.Join(dir, "userlist.txt"): userlist} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			return fail(err)
		}
	}
	if cred != nil {
		for _, p := range []string{dir, b.INI, filepath.Join(dir, "userlist.txt")} {
			if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
				return fail(err)
			}
		}
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port))
	if o.Detach {
		// pgbouncer -d forks and its first process exits: what runs on is
		// found again by its pid file.
		cmd := exec.CommandContext(ctx, bin, "-d", b.INI)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		if out, err := cmd.CombinedOutput(); err != nil {
			log, _ := os.ReadFile(b.log)
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer -d: %v: %s%s", err, strings.TrimSpace(string(out)), lastLines(string(log), 5))
		}
		b.detached = true
		close(b.done)
		for end := time.Now().Add(10 * time.Second); ; {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				return b, nil
			}
			if time.Now().After(end) || ctx.Err() != nil {
				_ = StopPgBouncer(dir)
				return nil, fmt.Errorf("pgbouncer: not listening on %s: %s", addr, lastLines(b.LogTail(5), 5))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.cmd = exec.Command(bin, b.INI)
	b.cmd.Dir = dir
	// It dies with the process that started it, even one killed by a test timeout.
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := b.cmd.Start(); err != nil {
		return fail(err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.done:
			log, _ := os.ReadFile(b.log)
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgbouncer exited at start: %s", lastLines(string(log), 5))
		case <-ctx.Done():
			b.Stop()
			return nil, fmt.Errorf("pgbouncer: not listening on %s: %w", addr, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// AdminURL is the admin console's URL for the admin user.
func (b *PgBouncer) AdminURL(user string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/pgbouncer?sslmode=disable", user, b.Port)
}

// LogTail returns the last n lines of pgbouncer's log.
func (b *PgBouncer) LogTail(n int) string {
	log, _ := os.ReadFile(b.log)
	return lastLines(string(log), n)
}

// Stop ends pgbouncer and removes its directory.
func (b *PgBouncer) Stop() {
	if b.detached {
		_ = StopPgBouncer(b.Dir)
		return
	}
	if b.cmd != nil && b.cmd.Process != nil {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-b.done:
		case <-time.After(5 * time.Second):
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	}
	os.RemoveAll(b.Dir)
}

// StopPgBouncer ends the pgbouncer whose files are in dir, started with
// Detach, by the pid in its pid file, and removes dir. A pgbouncer already
// gone is fine.
func StopPgBouncer(dir string) error {
	text, err := os.ReadFile(filepath.Join(dir, "pgbouncer.pid"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(text))); err == nil && perr == nil && pid > 0 && running(pid) {
		// SIGTERM: pgbouncer's immediate shutdown (SHUTDOWN on its console).
		_ = syscall.Kill(pid, syscall.SIGTERM)
		end := time.Now().Add(5 * time.Second)
		for running(pid) && time.Now().Before(end) {
			time.Sleep(20 * time.Millisecond)
		}
		if running(pid) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			for range 100 {
				if !running(pid) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		if running(pid) {
			return fmt.Errorf("pgbouncer: pid %d does not exit", pid)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	return nil
}

// running reports whether pid is a live pgbouncer process: a stale pid
// file never gets another process signalled, and a zombie its parent has
// not reaped yet counts as gone.
func running(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "pgbouncer" {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z' && stat[i+2] != 'X'
	}
	return true
}
