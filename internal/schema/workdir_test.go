package schema

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestSweepWorkDirs: the work directory of a pgmove that is gone is
// removed; one whose owner runs, one of another host, one without an owner
// file and anything else in the directory stay.
func TestSweepWorkDirs(t *testing.T) {
	tmp := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{ // name: owner file ("" for none)
		workPrefix + "gone":    owner(gone.Process.Pid),
		workPrefix + "running": owner(os.Getpid()),
		workPrefix + "other":   "another-host 1",
		workPrefix + "bad":     "garbage",
		workPrefix + "old":     "",
		"unrelated":            owner(gone.Process.Pid),
	}
	for name, own := range dirs {
		d := filepath.Join(tmp, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "schema.dump"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if own != "" {
			if err := os.WriteFile(filepath.Join(d, ownerFile), []byte(own), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	sweepWorkDirs(tmp)
	for name := range dirs {
		_, err := os.Stat(filepath.Join(tmp, name))
		if removed := os.IsNotExist(err); removed != (name == workPrefix+"gone") {
			t.Errorf("%s: removed %v", name, removed)
		}
	}

	// newWorkDir names its owner, so a later sweep keeps it while this
	// process runs.
	t.Setenv("TMPDIR", tmp)
	d, err := newWorkDir()
	if err != nil {
		t.Fatal(err)
	}
	sweepWorkDirs(tmp)
	if _, err := os.Stat(d); err != nil {
		t.Fatalf("the running process's work directory: %v", err)
	}
}
