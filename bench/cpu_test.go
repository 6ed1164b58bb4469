package main

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestProcTimes reads this process's own /proc entry: its parent is the
// one the kernel says, and CPU spent shows in its times.
func TestProcTimes(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	before, ok := procTimes(pid)
	if !ok {
		t.Fatal("cannot read /proc/self's times")
	}
	if before.ppid != os.Getppid() {
		t.Errorf("ppid %d, want %d", before.ppid, os.Getppid())
	}
	x := 0
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		for i := range 100000 {
			x ^= i
		}
	}
	after, _ := procTimes(pid)
	if spent := float64(after.utime+after.stime-before.utime-before.stime) / userHZ; spent < 0.1 {
		t.Errorf("300 ms of busy work shows as %.2f CPU seconds (%d)", spent, x)
	}
	if _, ok := procTimes("0"); ok {
		t.Error("pid 0 read")
	}
}
