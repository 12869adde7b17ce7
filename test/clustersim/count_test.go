package clustersim

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// requestCounter counts API requests by verb (get, list, watch, create, update, patch, delete)
// and by verb and resource. Wrap a rest.Config's transport with wrap.
type requestCounter struct {
	mu     sync.Mutex
	byVerb map[string]int64
	byRes  map[string]int64
}

func newRequestCounter() *requestCounter {
	return &requestCounter{byVerb: map[string]int64{}, byRes: map[string]int64{}}
}

func (c *requestCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		verb, res := classify(r.Method, r.URL.Path, r.URL.Query().Get("watch"))
		c.mu.Lock()
		c.byVerb[verb]++
		c.byRes[verb+" "+res]++
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

// snapshot returns copies of the counts.
func (c *requestCounter) snapshot() (byVerb, byRes map[string]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byVerb, byRes = map[string]int64{}, map[string]int64{}
	for k, v := range c.byVerb {
		byVerb[k] = v
	}
	for k, v := range c.byRes {
		byRes[k] = v
	}
	return byVerb, byRes
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// classify returns the Kubernetes verb and resource (with subresource) of a request to the API
// server, from its method and path: /api/v1/..., /apis/<group>/<version>/..., optionally
// namespaces/<ns>/, then <resource>[/<name>[/<subresource>]].
func classify(method, path, watch string) (verb, resource string) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(segs) >= 2 && segs[0] == "api":
		segs = segs[2:]
	case len(segs) >= 3 && segs[0] == "apis":
		segs = segs[3:]
	default:
		return strings.ToLower(method), "nonresource"
	}
	if len(segs) >= 3 && segs[0] == "namespaces" {
		segs = segs[2:]
	}
	named := len(segs) >= 2
	if len(segs) == 0 || segs[0] == "" {
		return strings.ToLower(method), "discovery"
	}
	resource = segs[0]
	if len(segs) >= 3 {
		resource += "/" + segs[2]
	}
	switch method {
	case http.MethodGet:
		switch {
		case watch == "true" || watch == "1":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		if named {
			verb = "delete"
		} else {
			verb = "deletecollection"
		}
	default:
		verb = strings.ToLower(method)
	}
	return verb, resource
}

// procStat is what /proc tells about a process.
type procStat struct {
	rssKiB, hwmKiB int64
	cpuTicks       int64 // utime + stime, in clock ticks
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

func readProc(pid int) (procStat, error) {
	var s procStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "VmRSS:":
			s.rssKiB, _ = strconv.ParseInt(f[1], 10, 64)
		case "VmHWM:":
			s.hwmKiB, _ = strconv.ParseInt(f[1], 10, 64)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces: fields after the last ')' start at field 3.
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(rest) < 13 {
		return s, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, _ := strconv.ParseInt(rest[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(rest[12], 10, 64) // field 15
	s.cpuTicks = ut + st
	return s, nil
}

// childByName returns the pid of a child of this process whose command name is comm, or 0.
func childByName(comm string) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	me := os.Getpid()
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open || s[open+1:closing] != comm {
			continue
		}
		rest := strings.Fields(s[closing+1:])
		if len(rest) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(rest[1]); ppid == me {
			pid, _ := strconv.Atoi(filepath.Base(d))
			return pid
		}
	}
	return 0
}

// promSum sums the samples of a Prometheus text-format counter by the value of one label.
func promSum(text, metric, label string) map[string]float64 {
	out := map[string]float64{}
	for line := range strings.SplitSeq(text, "\n") {
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		end := strings.LastIndexByte(line, '}')
		if end < 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(line[end+1:]), 64)
		if err != nil {
			continue
		}
		key := ""
		for kv := range strings.SplitSeq(line[len(metric)+1:end], ",") {
			if k, val, ok := strings.Cut(kv, "="); ok && k == label {
				key = strings.ToLower(strings.Trim(val, `"`))
			}
		}
		out[key] += v
	}
	return out
}
