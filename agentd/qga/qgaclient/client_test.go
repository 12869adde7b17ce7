package qgaclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// agent answers the sync handshake and replies to every command with reply(cmd).
func agent(t *testing.T, reply func(cmd string) string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "qga.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return
			}
			for len(line) > 0 && line[0] == 0xFF { // the sync delimiter
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
			out := reply(req.Execute)
			if req.Execute == "guest-sync-delimited" {
				b, _ := json.Marshal(map[string]int64{"return": req.Arguments.ID})
				out = "\xff" + string(b)
			}
			if _, err := c.Write([]byte(out + "\n")); err != nil {
				return
			}
		}
	}()
	return path
}

// TestRepliesLongerThanTheReadBuffer: the per-connection buffer is small (one connection per
// domain); replies of any size up to MaxLine are accumulated.
func TestRepliesLongerThanTheReadBuffer(t *testing.T) {
	long := strings.Repeat("x", 1<<20)
	path := agent(t, func(cmd string) string {
		b, _ := json.Marshal(map[string]any{"return": map[string]string{"cmd": cmd, "pad": long}})
		return string(b)
	})
	c, err := Dial(context.Background(), path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, cmd := range []string{"guest-get-fsinfo", "guest-get-users"} {
		raw, err := c.Call(context.Background(), cmd, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ Cmd, Pad string }
		if err := json.Unmarshal(raw, &got); err != nil || got.Cmd != cmd || got.Pad != long {
			t.Fatalf("%s: reply of %d bytes, cmd %q, pad %d bytes, err %v", cmd, len(raw), got.Cmd, len(got.Pad), err)
		}
	}
}

// The request line of a command without arguments is built without reflection; it must be the
// line json.Marshal writes, and names that would need escaping take the general path.
func TestRequestLine(t *testing.T) {
	for _, cmd := range []string{"guest-get-users", "guest-info", "a\"b", "Guest-Info", "é", ""} {
		got, err := request(cmd, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(map[string]any{"execute": cmd})
		if string(got) != string(want)+"\n" {
			t.Errorf("request(%q) = %q, want %q", cmd, got, want)
		}
	}
	got, _ := request("guest-sync", map[string]any{"id": 7})
	if string(got) != `{"arguments":{"id":7},"execute":"guest-sync"}`+"\n" {
		t.Errorf("with arguments: %q", got)
	}
}

// The fast path takes only a line that is exactly one "return" member; everything else goes
// through the general decoder, with the same outcome as before.
func TestReturnMember(t *testing.T) {
	for line, want := range map[string]string{
		`{"return": []}`:              `[]`,
		`{"return":{"a":1}}`:          `{"a":1}`,
		`{"return": "x"  }`:           `"x"`,
		`{"return": 1, "error": {}}`:  "",
		`{"return": {"a":1}, "b": 2}`: "",
		`{"error": {"class": "x"}}`:   "",
		`{"return": }`:                "",
		`{"return": [1,}`:             "",
		`{"returns": 1}`:              "",
	} {
		got, ok := returnMember([]byte(line))
		if ok != (want != "") || string(got) != want {
			t.Errorf("returnMember(%s) = %q, %v; want %q", line, got, ok, want)
		}
	}
	// through a client: an error reply beside a return member is still the agent's error
	path := agent(t, func(cmd string) string {
		if cmd == "both" {
			return `{"return": 1, "error": {"class": "GenericError", "desc": "no"}}`
		}
		return `{"return": {"cmd": "` + cmd + `"}}`
	})
	c, err := Dial(context.Background(), path, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if raw, err := c.Call(context.Background(), "guest-info", nil); err != nil || string(raw) != `{"cmd": "guest-info"}` {
		t.Fatalf("guest-info: %s, %v", raw, err)
	}
	var ae *AgentError
	if _, err := c.Call(context.Background(), "both", nil); !errors.As(err, &ae) || ae.Class != "GenericError" {
		t.Fatalf("error reply with a return member: %v", err)
	}
}
