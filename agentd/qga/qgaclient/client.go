// Package qgaclient is a minimal QEMU guest agent client over a unix socket (the QGA JSON line
// protocol), with no libvirt involved. agentd uses it as a direct transport for QEMU VMs not run
// by libvirt and in tests against a real qemu-ga listening on a host socket.
//
// Protocol handling: on connect (and after any timeout) the client resynchronises the way
// libvirt does: it sends a 0xFF byte, which makes the agent reset its parser (the agent answers
// the stray byte with a parse error that is skipped), then guest-sync-delimited with a random id,
// whose reply is prefixed with 0xFF; every line before the matching reply is discarded. Each
// call has a deadline. Close half-closes and drains the socket before closing it, because
// qemu-ga 7.2 exits when a client disconnects with unread replies (ECONNRESET). The agent serves
// one client at a time; a Client is safe for concurrent use but serialises calls.
package qgaclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// readBufferSize is the per-connection read buffer: one connection is kept per domain, so at
// 1,000 domains 64 KiB buffers held 62.5 MiB; longer replies are accumulated up to MaxLine.
const readBufferSize = 4 << 10

// MaxLine bounds one reply line.
const MaxLine = 16 << 20

// AgentError is an error reply of the agent: {"error":{"class":…,"desc":…}}.
type AgentError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *AgentError) Error() string { return "agent error " + e.Class + ": " + e.Desc }

// ErrClosed is returned by calls on a closed client.
var ErrClosed = errors.New("qgaclient: client closed")

// Client is one connection to an agent socket.
type Client struct {
	mu       sync.Mutex
	conn     *net.UnixConn
	r        *bufio.Reader
	timeout  time.Duration
	needSync bool
	closed   bool
	answered atomic.Int64 // Unix nanoseconds of the last reply read (0: none)
}

// Dial connects to the agent socket at path and synchronises. timeout bounds the dial + sync
// and is the default per-call timeout (ctx deadlines, when earlier, win).
func Dial(ctx context.Context, path string, timeout time.Duration) (*Client, error) {
	if timeout <= 0 {
		timeout = time.Second
	}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("dial qga socket %s: %w", path, err)
	}
	c := &Client{conn: nc.(*net.UnixConn), r: bufio.NewReaderSize(nc, readBufferSize), timeout: timeout, needSync: true}
	c.mu.Lock()
	err = c.sync(ctx)
	c.mu.Unlock()
	if err != nil {
		_ = nc.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) deadline(ctx context.Context, timeout time.Duration) time.Time {
	if timeout <= 0 {
		timeout = c.timeout
	}
	dl := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	return dl
}

// sync performs the 0xFF + guest-sync-delimited handshake. c.mu must be held.
func (c *Client) sync(ctx context.Context) error {
	if err := c.conn.SetDeadline(c.deadline(ctx, 0)); err != nil {
		return err
	}
	id := rand.Int64N(1 << 50)
	req, _ := json.Marshal(map[string]any{"execute": "guest-sync-delimited", "arguments": map[string]any{"id": id}})
	if _, err := c.conn.Write(append([]byte{0xFF}, append(req, '\n')...)); err != nil {
		return fmt.Errorf("qga sync: %w", err)
	}
	for {
		line, err := c.readLine()
		if err != nil {
			return fmt.Errorf("qga sync: %w", err)
		}
		i := bytes.LastIndexByte(line, 0xFF)
		if i < 0 {
			continue // stray reply (the parse error for 0xFF, or a late reply)
		}
		var rep struct {
			Return *int64 `json:"return"`
		}
		if json.Unmarshal(line[i+1:], &rep) == nil && rep.Return != nil && *rep.Return == id {
			c.needSync = false
			c.answered.Store(time.Now().UnixNano())
			return nil
		}
	}
}

func (c *Client) readLine() ([]byte, error) {
	var buf []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if err == nil {
			return bytes.TrimSpace(buf), nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		if len(buf) > MaxLine {
			return nil, fmt.Errorf("reply line exceeds %d bytes", MaxLine)
		}
	}
}

// Sync checks that the agent answers on this connection: guest-sync with a random id must come
// back with that id (after a failed call the full 0xFF + guest-sync-delimited resync runs
// first). Every agent enables guest-sync, so it is a liveness probe independent of the
// agent's command set.
func (c *Client) Sync(ctx context.Context) error {
	id := rand.Int64N(1 << 50)
	raw, err := c.Call(ctx, "guest-sync", map[string]any{"id": id})
	if err != nil {
		return err
	}
	var got int64
	if err := json.Unmarshal(raw, &got); err != nil || got != id {
		c.mu.Lock()
		c.needSync = true
		c.mu.Unlock()
		return fmt.Errorf("guest-sync: answered %.40q, want id %d", raw, id)
	}
	return nil
}

// Call sends cmd with args (nil for none) and returns the raw "return" member. An agent error
// reply is returned as *AgentError; a deadline as an error wrapping os.ErrDeadlineExceeded.
func (c *Client) Call(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	return c.call(ctx, cmd, args, true, 0)
}

// CallWithin is Call with timeout (instead of the client's) as the bound of this call.
func (c *Client) CallWithin(ctx context.Context, cmd string, args any, timeout time.Duration) (json.RawMessage, error) {
	return c.call(ctx, cmd, args, true, timeout)
}

// Send sends cmd without waiting for a reply, for commands that never answer on success
// (guest-shutdown, guest-suspend-*).
func (c *Client) Send(ctx context.Context, cmd string, args any) error {
	_, err := c.call(ctx, cmd, args, false, 0)
	return err
}

// request encodes the request line of cmd with args (nil for none).
func request(cmd string, args any) ([]byte, error) {
	if args == nil && plainName(cmd) { // the polling path: no map, no reflection
		b := make([]byte, 0, len(cmd)+16)
		b = append(b, `{"execute":"`...)
		b = append(b, cmd...)
		return append(b, `"}`+"\n"...), nil
	}
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	return append(b, '\n'), err
}

// plainName reports whether cmd needs no JSON escaping (QGA command names: a-z, 0-9, '-').
func plainName(cmd string) bool {
	for i := range len(cmd) {
		if ch := cmd[i]; (ch < 'a' || ch > 'z') && (ch < '0' || ch > '9') && ch != '-' {
			return false
		}
	}
	return cmd != ""
}

func (c *Client) call(ctx context.Context, cmd string, args any, wait bool, timeout time.Duration) (json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.needSync {
		if err := c.sync(ctx); err != nil {
			return nil, err
		}
	}
	b, err := request(cmd, args)
	if err != nil {
		return nil, fmt.Errorf("%s: encode: %w", cmd, err)
	}
	if err := c.conn.SetDeadline(c.deadline(ctx, timeout)); err != nil {
		return nil, err
	}
	if _, err := c.conn.Write(b); err != nil {
		c.needSync = true
		return nil, fmt.Errorf("%s: write: %w", cmd, err)
	}
	if !wait {
		c.needSync = true // whatever comes back later must not be taken as the next reply
		return nil, nil
	}
	for {
		line, err := c.readLine()
		if err != nil {
			c.needSync = true
			return nil, fmt.Errorf("%s: read: %w", cmd, err)
		}
		if len(line) == 0 || line[0] == 0xFF {
			continue
		}
		if raw, ok := returnMember(line); ok {
			c.answered.Store(time.Now().UnixNano())
			return raw, nil
		}
		var rep struct {
			Return json.RawMessage `json:"return"`
			Error  *AgentError     `json:"error"`
		}
		if err := json.Unmarshal(line, &rep); err != nil {
			c.needSync = true
			return nil, fmt.Errorf("%s: malformed reply %.80q: %w", cmd, line, err)
		}
		c.answered.Store(time.Now().UnixNano())
		if rep.Error != nil {
			return nil, fmt.Errorf("%s: %w", cmd, rep.Error)
		}
		if rep.Return == nil {
			return nil, fmt.Errorf("%s: reply without return member", cmd)
		}
		return rep.Return, nil
	}
}

// returnMember is the fast path for the usual reply line, {"return": VALUE}: VALUE without
// decoding the line into a structure (one validating scan instead of a full decode). Any other
// line (an error reply, more members, another layout) is left to the general path.
func returnMember(line []byte) (json.RawMessage, bool) {
	const prefix = `{"return":`
	if len(line) < len(prefix)+2 || string(line[:len(prefix)]) != prefix || line[len(line)-1] != '}' {
		return nil, false
	}
	v := bytes.TrimSpace(line[len(prefix) : len(line)-1])
	if len(v) == 0 || !json.Valid(v) { // e.g. {"return": 1, "error": {…}}: not one value
		return nil, false
	}
	return v, true
}

// LastAnswer is when the agent last answered on this connection (a reply or an error reply to
// a call, or the synchronisation); zero before any.
func (c *Client) LastAnswer() time.Time {
	if n := c.answered.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// Close half-closes the connection, drains what the agent still sends (bounded by the client
// timeout) and closes it.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	_ = c.conn.CloseWrite()
	_ = c.conn.SetReadDeadline(time.Now().Add(c.timeout))
	_, _ = io.Copy(io.Discard, c.r)
	return c.conn.Close()
}

// IsTimeout reports whether err is a call deadline.
func IsTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
}
