package main

import (
	"os"
	"strconv"
	"syscall"
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
	// Busy until the kernel's own account (getrusage) shows 0.3 CPU
	// seconds more, however loaded the machine: wall time says nothing.
	cpu := func() float64 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	x, from := 0, cpu()
	for deadline := time.Now().Add(time.Minute); cpu()-from < 0.3 && time.Now().Before(deadline); {
		for i := range 100000 {
			x ^= i
		}
	}
	used := cpu() - from
	after, _ := procTimes(pid)
	// /proc counts in ticks of 10 ms: within two ticks and a little of getrusage's figure.
	if spent := float64(after.utime+after.stime-before.utime-before.stime) / userHZ; spent < used-0.05 || spent > used+0.5 {
		t.Errorf("%.2f CPU seconds used (getrusage) show as %.2f in /proc (%d)", used, spent, x)
	}
	if _, ok := procTimes("0"); ok {
		t.Error("pid 0 read")
	}
}
