// Package qgatest runs Debian's real qemu-ga on the host as a QEMU guest agent peer for tests:
// one process per unix socket (-m unix-listen), with every command that would act on the test
// machine blocked, as hack/qga-host-agent.sh does. It also provides a hostile peer.
package qgatest

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"guestagent.io/operator/agentd/qga/qgaclient"
)

// Binary is Debian's qemu-ga (package qemu-guest-agent; hack/install-deps.sh installs it).
const Binary = "/usr/sbin/qemu-ga"

// Blocked are the commands disabled in the host agents: everything that would act on the host.
const Blocked = "guest-shutdown,guest-suspend-disk,guest-suspend-ram,guest-suspend-hybrid,guest-set-user-password," +
	"guest-exec,guest-exec-status,guest-file-open,guest-set-time,guest-fsfreeze-freeze,guest-fsfreeze-freeze-list," +
	"guest-fsfreeze-thaw,guest-fstrim,guest-set-vcpus,guest-set-memory-blocks"

// Agent is one running qemu-ga.
type Agent struct {
	Socket string
	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// Require skips the test when qemu-ga is not installed.
func Require(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("%s not installed (hack/install-deps.sh installs qemu-guest-agent)", Binary)
	}
}

// Start runs qemu-ga listening on sock (its state lives in a temp dir) and returns once a client
// can connect and synchronise. It is stopped at cleanup at the latest.
func Start(t testing.TB, sock string) *Agent {
	t.Helper()
	Require(t)
	state := t.TempDir()
	cmd := exec.Command(Binary, "-m", "unix-listen", "-p", sock, "-t", state, "-f", filepath.Join(state, "pid"), "-b", Blocked)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &Agent{Socket: sock, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(a.exited) }()
	t.Cleanup(a.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := qgaclient.Dial(context.Background(), sock, time.Second)
		if err == nil {
			_ = c.Close()
			return a
		}
		select {
		case <-a.exited:
			t.Fatalf("qemu-ga on %s exited: %s", sock, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("qemu-ga on %s did not come up: %v", sock, err)
		}
		time.Sleep(5 * time.Millisecond) // waiting for an external process to listen
	}
}

// Stop kills the agent and removes its socket (idempotent).
func (a *Agent) Stop() {
	a.once.Do(func() {
		_ = a.cmd.Process.Kill()
		<-a.exited
		_ = os.Remove(a.Socket)
	})
}

// Hostile listens on sock and answers every connection with an endless stream of garbage: lines
// that are not JSON, then one line longer than any reply limit, forever. It stops at cleanup.
func Hostile(t testing.TB, sock string) {
	t.Helper()
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	garbage := bytes.Repeat([]byte("\xff{not json}\n{\"return\": 1}\n"), 64)
	huge := bytes.Repeat([]byte("x"), 1<<20)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { _ = c.Close() }()
				// drain what the client sends, so its writes never block
				wg.Add(1)
				go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, c) }()
				for i := 0; ; i++ {
					chunk := garbage
					if i%2 == 1 {
						chunk = huge // no newline: one line that never ends
					}
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
}
