package qga

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// countingAgent serves the QGA line protocol on a unix socket and counts the commands it receives.
func countingAgent(t *testing.T, counts map[string]*atomic.Int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qga.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadBytes('\n')
					if err != nil {
						return
					}
					for len(line) > 0 && line[0] == 0xFF {
						line = line[1:]
					}
					var req struct {
						Execute   string `json:"execute"`
						Arguments struct {
							ID int64 `json:"id"`
						} `json:"arguments"`
					}
					if json.Unmarshal(line, &req) != nil {
						continue
					}
					if n := counts[req.Execute]; n != nil {
						n.Add(1)
					}
					var out []byte
					switch req.Execute {
					case "guest-sync-delimited":
						b, _ := json.Marshal(map[string]int64{"return": req.Arguments.ID})
						out = append([]byte{0xFF}, b...)
					case "guest-sync":
						out, _ = json.Marshal(map[string]int64{"return": req.Arguments.ID})
					default:
						out = []byte(`{"return":[]}`)
					}
					if _, err := c.Write(append(out, '\n')); err != nil {
						return
					}
				}
			}()
		}
	}()
	return path
}

// A probe asks the agent only when it has not answered on the shared connection since the given
// time: the poller's calls are proof enough that it is alive.
func TestSocketProbeCountsThePollersAnswers(t *testing.T) {
	counts := map[string]*atomic.Int64{"guest-sync": {}, "guest-sync-delimited": {}, CmdUsers: {}}
	path := countingAgent(t, counts)
	const uuid = "5ca1e000-0000-4000-8000-000000000001"
	api := NewSocketAPI(func(u string) (string, bool) { return path, u == uuid })
	defer func() { _ = api.Close() }()
	ctx := context.Background()

	if err := api.Probe(ctx, uuid, time.Second, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if n := counts["guest-sync-delimited"].Load(); n != 1 {
		t.Fatalf("first probe: %d synchronisations, want 1 (dial + sync)", n)
	}
	before := time.Now()
	if _, err := api.GuestInfo(ctx, uuid, InfoUsers, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := api.Probe(ctx, uuid, time.Second, before); err != nil {
		t.Fatal(err)
	}
	if n := counts["guest-sync"].Load(); n != 0 {
		t.Fatalf("probe after an answer since %v sent %d guest-sync, want 0", before, n)
	}
	if err := api.Probe(ctx, uuid, time.Second, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := counts["guest-sync"].Load(); n != 1 {
		t.Fatalf("probe with no answer since now sent %d guest-sync, want 1", n)
	}
	if n := counts["guest-sync-delimited"].Load(); n != 1 {
		t.Fatalf("%d synchronisations on one open connection, want 1", n)
	}
	if missing := api.Probe(ctx, "5ca1e000-0000-4000-8000-000000000002", time.Second, before); ClassOf(missing) != ErrDomainNotRunning {
		t.Fatalf("probe of a domain without a socket: %v", missing)
	}
}
