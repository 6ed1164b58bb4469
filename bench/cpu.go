package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/pgmove/pgmove/internal/pgserver"
)

// Where a run's CPU went (issue 18 point 3): the tool's own process, the
// source server's processes and the target server's, against wall time ×
// cores. A run near 100% has nothing left to overlap on this machine: the
// next gain must come from doing less work.
//
// A server's CPU is read from /proc: the postmaster's own time, the time of
// the children it has reaped (cutime, cstime: every backend, parallel
// worker and walsender that has exited; the postmaster waits for each), and
// the time of the children still running. The difference of two readings
// is the server's CPU between them, whichever backends came and went. Both
// servers run on this machine, so the bench sees them; the figures are in
// the kernel's clock ticks (USER_HZ, 100 on Linux).

// userHZ is the unit of /proc/<pid>/stat's times: USER_HZ, fixed at 100
// on Linux whatever the kernel's internal tick.
const userHZ = 100

// serverCPU is the CPU seconds the server's processes have used so far,
// reaped children included; -1 when it cannot be read.
func serverCPU(s *pgserver.Server) float64 {
	if s == nil {
		return -1
	}
	pidFile, err := os.ReadFile(filepath.Join(s.DataDir, "postmaster.pid"))
	if err != nil {
		return -1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(pidFile), "\n", 2)[0]))
	if err != nil {
		return -1
	}
	own, ok := procTimes(strconv.Itoa(pid))
	if !ok {
		return -1
	}
	total := own.utime + own.stime + own.cutime + own.cstime
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		t, ok := procTimes(p.Name())
		if ok && t.ppid == pid {
			// A running backend's own time; its reaped children (none
			// in PostgreSQL but an archive or restore command) too.
			total += t.utime + t.stime + t.cutime + t.cstime
		}
	}
	return float64(total) / userHZ
}

type times struct {
	ppid                         int
	utime, stime, cutime, cstime int64
}

// procTimes reads /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may hold spaces: the fields are counted after its last ')'.
func procTimes(pid string) (times, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return times{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return times{}, false
	}
	// After ')': state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17).
	f := strings.Fields(s[i+1:])
	if len(f) < 15 {
		return times{}, false
	}
	var t times
	var errs [5]error
	t.ppid, errs[0] = strconv.Atoi(f[1])
	t.utime, errs[1] = strconv.ParseInt(f[11], 10, 64)
	t.stime, errs[2] = strconv.ParseInt(f[12], 10, 64)
	t.cutime, errs[3] = strconv.ParseInt(f[13], 10, 64)
	t.cstime, errs[4] = strconv.ParseInt(f[14], 10, 64)
	for _, err := range errs {
		if err != nil {
			return times{}, false
		}
	}
	return t, true
}

// cpuMeter measures both servers' CPU across one tool run.
type cpuMeter struct {
	src, dst     *pgserver.Server
	srcAt, dstAt float64
}

func startCPU(src, dst *pgserver.Server) *cpuMeter {
	return &cpuMeter{src: src, dst: dst, srcAt: serverCPU(src), dstAt: serverCPU(dst)}
}

// stop returns the CPU seconds each server used since start; -1 unknown.
func (m *cpuMeter) stop() (src, dst float64) {
	diff := func(at float64, s *pgserver.Server) float64 {
		now := serverCPU(s)
		if at < 0 || now < 0 || now < at {
			return -1
		}
		return now - at
	}
	return diff(m.srcAt, m.src), diff(m.dstAt, m.dst)
}

// writeCPU prints, per successful run, where the CPU went against what the
// machine had: wall seconds × cores.
func writeCPU(w io.Writer, ds *datasetResult, cores int) {
	var runs []*runResult
	for i := range ds.Runs {
		r := &ds.Runs[i]
		if r.Error == "" && r.SourceCPUSeconds >= 0 && r.TargetCPUSeconds >= 0 && (r.SourceCPUSeconds > 0 || r.TargetCPUSeconds > 0) {
			runs = append(runs, r)
		}
	}
	if len(runs) == 0 {
		return
	}
	fmt.Fprintf(w, "CPU seconds of each run (the tool's process and the children it waited for; each server's processes, from /proc)\n")
	fmt.Fprintf(w, "  against wall seconds × %d cores: near 100%%, nothing is left to overlap on this machine:\n", cores)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tround\twall\ttool CPU\tsource CPU\ttarget CPU\tsum\tof wall × cores\t")
	for _, r := range runs {
		sum := r.CPUSeconds + r.SourceCPUSeconds + r.TargetCPUSeconds
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.0f%%\t\n", r.Tool, r.Round, r.Seconds,
			r.CPUSeconds, r.SourceCPUSeconds, r.TargetCPUSeconds, sum, 100*sum/(r.Seconds*float64(cores)))
	}
	tw.Flush()
}
