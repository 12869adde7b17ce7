// Package e2e proves the whole product on real parts: a real libvirtd running TCG guests with
// Debian's real qemu-ga (and the project's oVirt guest agent inside one guest, over a real
// virtio port), a real control plane (envtest's kube-apiserver + etcd), and both binaries
// (bin/manager, bin/agentd) as separate processes. Run it with `make test-e2e` (root; it
// installs and starts what it needs). It never skips: a missing piece is a failure.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/hostcmd"
	"guestagent.io/operator/internal/testenv"
)

const (
	nodeName = "e2e-node"
	ns       = "guestagent-system"
	gBoth    = "e2e-both" // qemu-ga + oVirt agent, with a disk
	gQGA     = "e2e-qga"  // qemu-ga only, 2 vCPUs, a memory balloon, suspend to RAM
)

var (
	root    = testenv.RepoRoot()
	env     *testenv.Env
	workDir string
	kubecfg string
	agentd  *proc
)

func logf(format string, a ...any) { fmt.Printf("e2e: "+format+"\n", a...) }

func TestMain(m *testing.M) {
	code, err := mainErr(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e setup:", err)
		code = 1
	}
	os.Exit(code)
}

func mainErr(m *testing.M) (int, error) {
	// Conditions read the apiserver, virsh or a guest: poll them at a human pace.
	SetDefaultEventuallyPollingInterval(500 * time.Millisecond)
	if os.Geteuid() != 0 {
		return 1, fmt.Errorf("the e2e suite needs root (libvirtd, guests)")
	}
	var err error
	workDir, err = os.MkdirTemp("", "guestagent-e2e")
	if err != nil {
		return 1, err
	}
	qgaEnv := filepath.Join(workDir, "guest")
	os.Setenv("QGA_ENV", qgaEnv)
	os.Setenv("LIBVIRT_DEFAULT_URI", "qemu:///system")
	os.Setenv("OGA_GUEST_BIN", filepath.Join(root, "bin", "oga-guest"))
	for _, b := range []string{"manager", "agentd", "oga-guest", "prometheus"} {
		if _, err := os.Stat(filepath.Join(root, "bin", b)); err != nil {
			return 1, fmt.Errorf("bin/%s missing: run `make build prometheus` (make test-e2e does)", b)
		}
	}
	logf("setting up libvirtd and the guest kernel/initramfs")
	if out, err := sh("bash", "hack/libvirt-env.sh"); err != nil {
		return 1, fmt.Errorf("libvirt-env: %v\n%s", err, out)
	}
	defer func() {
		for _, g := range []string{gBoth, gQGA} {
			_, _ = sh("bash", "hack/guest.sh", "down", g)
		}
	}()
	logf("booting guests %s and %s", gBoth, gQGA)
	errs := make(chan error, 2)
	go func() { errs <- bootGuest(gBoth, "WITH_OGA=1", "QGA_DISK=1", "PM=1") }()
	go func() { errs <- bootGuest(gQGA, "BALLOON=1", "VCPUS=2", "PM=1") }()
	for range 2 {
		if err := <-errs; err != nil {
			return 1, err
		}
	}

	logf("starting the control plane")
	env, err = testenv.Start()
	if err != nil {
		return 1, err
	}
	defer func() { _ = env.Stop() }()
	if kubecfg, err = env.WriteKubeconfig(workDir, "e2e-admin"); err != nil {
		return 1, err
	}
	ctx := context.Background()
	if err := env.Client.Create(ctx, testenv.Node(nodeName)); err != nil {
		return 1, err
	}
	nsObj := &metav1.ObjectMeta{Name: ns}
	if err := env.Client.Create(ctx, namespace(nsObj.Name)); err != nil {
		return 1, err
	}

	manager := start("manager", "--metrics-bind-address", "0", "--health-probe-bind-address", "127.0.0.1:28081")
	defer manager.stop()
	agentd = startAgentd()
	defer func() { agentd.stop() }()
	return m.Run(), nil
}

func bootGuest(name string, envs ...string) error {
	cmd := exec.Command("bash", "hack/guest.sh", "up", name)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), envs...)
	out, err := hostcmd.Output(cmd)
	if err != nil {
		return fmt.Errorf("guest %s: %w", name, err)
	}
	logf("%s", strings.TrimSpace(out))
	return nil
}

func startAgentd() *proc {
	return start("agentd", "--node-name", nodeName, "--libvirt-uri", "qemu:///system",
		"--default-namespace", ns, "--metrics-bind-address", "127.0.0.1:28080",
		"--health-probe-bind-address", "127.0.0.1:28082", "--poll-users", "5s", "--poll-system", "10s",
		"--poll-disks", "10s", "--poll-cpus", "10s")
}

// sh runs a command in the repository root and returns its standard output (standard error
// only in the error).
func sh(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	return hostcmd.Output(cmd)
}

// proc is a binary running as a separate process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
}

func start(name string, args ...string) *proc {
	f, err := os.Create(filepath.Join(workDir, name+".log"))
	if err != nil {
		panic(err)
	}
	cmd := exec.Command(filepath.Join(root, "bin", name), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubecfg)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		panic(err)
	}
	logf("started %s (pid %d), log %s", name, cmd.Process.Pid, f.Name())
	return &proc{name: name, cmd: cmd, log: f}
}

// kill ends the process with SIGKILL (no clean shutdown) and waits for it.
func (p *proc) kill() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	_ = p.log.Close()
}

func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
	_ = p.log.Close()
}

func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// withAgentdLog describes a wait for a failure message, followed by the tail of agentd's log.
func withAgentdLog(what string) func() string {
	return func() string { return what + "\n--- agentd log tail ---\n" + agentd.tail() }
}

func virsh(args ...string) (string, error) { return hostcmd.Virsh("qemu:///system", args...) }

func domUUID(name string) string {
	out, err := virsh("domuuid", name)
	if err != nil {
		panic(fmt.Sprintf("domuuid %s: %v %s", name, err, out))
	}
	return strings.TrimSpace(out)
}

func domMAC(name string) string {
	out, _ := virsh("domiflist", name)
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 5 && strings.Count(f[4], ":") == 5 {
			return f[4]
		}
	}
	return ""
}

func gas(uuid string) (*gav1.GuestAgentStatus, error) {
	list := &gav1.GuestAgentStatusList{}
	if err := env.Client.List(context.Background(), list, client.MatchingLabels{gav1.LabelDomainUUID: uuid}); err != nil {
		return nil, err
	}
	if len(list.Items) != 1 {
		return nil, fmt.Errorf("%d GuestAgentStatus objects for %s", len(list.Items), uuid)
	}
	return &list.Items[0], nil
}

func cond(g *gav1.GuestAgentStatus, t string) metav1.ConditionStatus {
	for _, c := range g.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

// guestStart starts a shell command inside a guest through qemu-ga and returns the reply.
func guestStart(t *testing.T, name, script string, capture bool) string {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"execute": "guest-exec", "arguments": map[string]any{
		"path": "/bin/sh", "arg": []string{"-c", script}, "capture-output": capture}})
	out, err := virsh("qemu-agent-command", name, string(req))
	if err != nil {
		t.Fatalf("guest-exec in %s: %v %s", name, err, out)
	}
	return out
}

// guestExec runs a shell command inside a guest through qemu-ga and returns its output.
func guestExec(t *testing.T, name, script string) string {
	t.Helper()
	out, err := guestExecErr(name, script)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// guestExecErr is guestExec returning errors (for use while the agent may be away).
func guestExecErr(name, script string) (string, error) {
	req, _ := json.Marshal(map[string]any{"execute": "guest-exec", "arguments": map[string]any{
		"path": "/bin/sh", "arg": []string{"-c", script}, "capture-output": true}})
	out, err := virsh("qemu-agent-command", name, string(req))
	if err != nil {
		return "", fmt.Errorf("guest-exec in %s: %v %s", name, err, out)
	}
	var r struct {
		Return struct{ PID int } `json:"return"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return "", fmt.Errorf("guest-exec reply %q: %v", out, err)
	}
	var data []byte
	exited := func(context.Context) (bool, error) {
		st, _ := virsh("qemu-agent-command", name, fmt.Sprintf(`{"execute":"guest-exec-status","arguments":{"pid":%d}}`, r.Return.PID))
		var s struct {
			Return struct {
				Exited  bool   `json:"exited"`
				OutData []byte `json:"out-data"`
			} `json:"return"`
		}
		if json.Unmarshal([]byte(st), &s) != nil || !s.Return.Exited {
			return false, nil
		}
		data = s.Return.OutData
		return true, nil
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 10*time.Second, true, exited); err != nil {
		return "", fmt.Errorf("guest-exec in %s did not finish: %w", name, err)
	}
	return string(data), nil
}

// command creates a GuestAgentCommand and waits until it is terminal.
func command(t *testing.T, name, target string, action gav1.Action, mutate func(*gav1.GuestAgentCommand)) *gav1.GuestAgentCommand {
	t.Helper()
	return waitCommand(t, createCommand(t, name, target, action, mutate))
}

func createCommand(t *testing.T, name, target string, action gav1.Action, mutate func(*gav1.GuestAgentCommand)) *gav1.GuestAgentCommand {
	t.Helper()
	c := &gav1.GuestAgentCommand{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: gav1.GuestAgentCommandSpec{Target: target, Action: action}}
	if mutate != nil {
		mutate(c)
	}
	if err := env.Client.Create(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

func waitCommand(t *testing.T, c *gav1.GuestAgentCommand) *gav1.GuestAgentCommand {
	t.Helper()
	name := c.Name
	got := &gav1.GuestAgentCommand{}
	NewWithT(t).Eventually(func() error {
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(c), got); err != nil {
			return err
		}
		if !got.Status.Phase.IsTerminal() {
			return fmt.Errorf("phase %q", got.Status.Phase)
		}
		return nil
	}).WithTimeout(90*time.Second).Should(Succeed(), withAgentdLog("command "+name+" finishes"))
	logf("command %s: %s %s: %s (agents %v)", name, got.Status.Phase, got.Status.Reason, got.Status.Message, got.Status.Agents)
	return got
}

func ready() error {
	resp, err := http.Get("http://127.0.0.1:28082/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return fmt.Errorf("readyz %d: %s", resp.StatusCode, b.String())
	}
	return nil
}

// metricIs checks that agentd's /metrics has the unlabelled metric name with value want.
func metricIs(name string, want float64) error {
	resp, err := http.Get("http://127.0.0.1:28080/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return err
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			if got, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err != nil || got != want {
				return fmt.Errorf("%s = %s, want %g", name, v, want)
			}
			return nil
		}
	}
	return fmt.Errorf("%s not exported", name)
}
