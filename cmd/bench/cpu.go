package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuSample is the CPU time used so far by this process and by every PostgreSQL server process
// on the machine, so that a workload can say how its cores were shared. Backends that exited
// during the interval are not counted; the store's pools keep theirs open, so that loss is small.
type cpuSample struct {
	at       time.Time
	self     time.Duration
	postgres time.Duration
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every Linux this runs on.
const clockTick = 100

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		line := string(b)
		open, end := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
		if open < 0 || end < open || line[open+1:end] != "postgres" {
			continue
		}
		f := strings.Fields(line[end+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		s.postgres += time.Duration((ut + st) * int64(time.Second) / clockTick)
	}
	return s
}

// CPUUse is the CPU spent between two samples, in seconds and as cores busy on average.
type CPUUse struct {
	WallSeconds     float64 `json:"wall_s"`
	BenchSeconds    float64 `json:"bench_process_cpu_s"` // the whole in-process stack, mock and emulators included
	PostgresSeconds float64 `json:"postgres_cpu_s"`
	BenchCores      float64 `json:"bench_process_cores"`
	PostgresCores   float64 `json:"postgres_cores"`
}

func cpuSince(a cpuSample) CPUUse {
	b := sampleCPU()
	wall := b.at.Sub(a.at).Seconds()
	u := CPUUse{WallSeconds: round3(wall), BenchSeconds: seconds(b.self - a.self), PostgresSeconds: seconds(b.postgres - a.postgres)}
	if wall > 0 {
		u.BenchCores = round3(u.BenchSeconds / wall)
		u.PostgresCores = round3(u.PostgresSeconds / wall)
	}
	return u
}
