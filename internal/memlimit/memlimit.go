// Package memlimit sets the Go runtime's soft memory limit from the container's memory limit,
// so that a binary near its cgroup limit collects garbage harder instead of being OOM-killed.
// It owns nothing else: the limit is set once at startup, and GOMEMLIMIT, when set, wins.
package memlimit

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// DefaultRatio leaves a fifth of the container's limit to memory the Go runtime does not manage
// (C libraries such as libvirt's client, thread stacks, the binary's pages).
const DefaultRatio = 0.8

// unlimitedV1 is the smallest cgroup v1 limit read as "no limit" (the kernel reports 2^63 - 4 KiB
// rounded down to the page size when none is set).
const unlimitedV1 = 1 << 62

// Result says what Set did.
type Result struct {
	Limit     int64  // the Go memory limit set, in bytes (0: none set)
	Container int64  // the container's memory limit read (0: none)
	Source    string // the cgroup file read, or "GOMEMLIMIT"
}

// Set reads the memory limit of the cgroup this process runs in under root (normally
// "/sys/fs/cgroup"; cgroup v2's memory.max, or v1's memory/memory.limit_in_bytes) and sets the
// Go memory limit to ratio of it. It does nothing when GOMEMLIMIT is set or no limit applies.
func Set(root string, ratio float64) (Result, error) {
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok && v != "" {
		return Result{Limit: debug.SetMemoryLimit(-1), Source: "GOMEMLIMIT"}, nil
	}
	if ratio <= 0 || ratio > 1 {
		return Result{}, fmt.Errorf("memory limit ratio %v is not in (0, 1]", ratio)
	}
	limit, source, err := read(root)
	if err != nil || limit == 0 {
		return Result{Source: source}, err
	}
	set := int64(math.Floor(float64(limit) * ratio))
	debug.SetMemoryLimit(set)
	return Result{Limit: set, Container: limit, Source: source}, nil
}

// read returns the container's memory limit in bytes (0 when unlimited or not found).
func read(root string) (int64, string, error) {
	for _, f := range []string{"memory.max", filepath.Join("memory", "memory.limit_in_bytes")} {
		p := filepath.Join(root, f)
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, p, err
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, p, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return 0, p, fmt.Errorf("%s: unexpected content %q", p, s)
		}
		if n >= unlimitedV1 {
			return 0, p, nil
		}
		return n, p, nil
	}
	return 0, "", nil
}

// Apply is Set for a binary's startup: the process's cgroup (/sys/fs/cgroup) and DefaultRatio,
// with the outcome logged once.
func Apply(log logr.Logger) {
	r, err := Set("/sys/fs/cgroup", DefaultRatio)
	switch {
	case err != nil:
		log.Info("Cannot read the container's memory limit; the Go memory limit is not set", "error", err.Error())
	case r.Source == "GOMEMLIMIT":
		log.Info("Go memory limit from GOMEMLIMIT", "limitBytes", r.Limit)
	case r.Limit > 0:
		log.Info("Go memory limit set from the container's memory limit", "limitBytes", r.Limit,
			"containerLimitBytes", r.Container, "source", r.Source)
	}
}
