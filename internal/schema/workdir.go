package schema

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The schema's work directory holds the source's dump while a command
// runs, and is removed when it ends. A pgmove that is killed (SIGKILL, the
// machine's OOM killer) cannot remove it, so each directory names its
// owner, host and process, in a file, and the next pgmove to dump removes
// the directories of owners that are gone.

const (
	workPrefix = "pgmove-schema-"
	ownerFile  = "owner"
)

// newWorkDir creates a work directory under the system's temporary
// directory, after removing those a killed pgmove left there.
func newWorkDir() (string, error) {
	sweepWorkDirs(os.TempDir())
	dir, err := os.MkdirTemp("", workPrefix)
	if err != nil {
		return "", fmt.Errorf("schema work directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner(os.Getpid())), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("schema work directory: %w", err)
	}
	return dir, nil
}

func owner(pid int) string {
	host, _ := os.Hostname()
	return host + " " + strconv.Itoa(pid)
}

// sweepWorkDirs removes the work directories under tmp whose owner ran on
// this host and is no longer running. A directory without an owner file
// (being created, or left by an older pgmove) or of another host (a /tmp
// shared between containers) is left alone.
func sweepWorkDirs(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, workPrefix+"*"))
	host, _ := os.Hostname()
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		h, p, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
		pid, err := strconv.Atoi(p)
		if !ok || err != nil || pid <= 0 || h != host || alive(pid) {
			continue
		}
		if err := os.RemoveAll(d); err == nil {
			slog.Debug("removed the schema work directory of a pgmove that is gone", "dir", d, "pid", pid)
		}
	}
}

// alive reports whether a process pid exists (one of another user's
// counts: signalling it is refused, not unknown).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
