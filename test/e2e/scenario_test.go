package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// TestRealStack runs the scenarios in order; they share the guests and the processes.
func TestRealStack(t *testing.T) {
	both, qga := domUUID(gBoth), domUUID(gQGA)
	var bothName, qgaName string

	t.Run("StatusShowsRealGuestData", func(t *testing.T) {
		for _, g := range []struct{ name, uuid string }{{gBoth, both}, {gQGA, qga}} {
			mac := domMAC(g.name)
			NewWithT(t).Eventually(func() error {
				s, err := gas(g.uuid)
				if err != nil {
					return err
				}
				st := s.Status
				switch {
				case st.Hostname != g.name:
					return fmt.Errorf("hostname %q", st.Hostname)
				case st.OS == nil || st.OS.Type != "Linux" || !strings.HasPrefix(st.OS.KernelRelease, "6."):
					return fmt.Errorf("os %+v", st.OS)
				case !hasInterface(st.Interfaces, mac, "10.0.2.15"):
					return fmt.Errorf("interfaces %+v (want MAC %s with 10.0.2.15)", st.Interfaces, mac)
				case !hasGroup(st.DataGroups, "Users"):
					return fmt.Errorf("users not reported (dataGroups %+v)", st.DataGroups)
				case cond(s, gav1.ConditionAgentConnected) != metav1.ConditionTrue:
					return fmt.Errorf("AgentConnected %q", cond(s, gav1.ConditionAgentConnected))
				case st.QemuAgent == nil || st.QemuAgent.Version == "":
					return fmt.Errorf("qemuAgent %+v", st.QemuAgent)
				}
				return nil
			}).WithTimeout(120*time.Second).Should(Succeed(), withAgentdLog("real data of "+g.name))
		}
		NewWithT(t).Eventually(func() error {
			s, err := gas(both)
			if err != nil {
				return err
			}
			st := s.Status
			if !hasFilesystem(st.Filesystems, "/mnt/data", "/dev/vda") {
				return fmt.Errorf("filesystems %+v", st.Filesystems)
			}
			if st.OvirtAgent == nil || ptr.Deref(st.OvirtAgent.APIVersion, 0) != 3 {
				return fmt.Errorf("ovirtAgent %+v", st.OvirtAgent)
			}
			if st.Memory == nil || st.Memory.TotalBytes == nil || *st.Memory.TotalBytes == 0 {
				return fmt.Errorf("memory statistics (OGA-only) %+v", st.Memory)
			}
			if st.ActiveAgents != gav1.ActiveAgentsBoth {
				return fmt.Errorf("activeAgents %q", st.ActiveAgents)
			}
			bothName = s.Name
			return nil
		}).WithTimeout(120*time.Second).Should(Succeed(), withAgentdLog(gBoth+" disk and OGA-only data"))
		// The QEMU guest agent has no memory figures: the QGA-only guest's come from libvirt's
		// balloon statistics (it has a virtio balloon; agentd turns its statistics period on).
		NewWithT(t).Eventually(func() error {
			s, err := gas(qga)
			if err != nil {
				return err
			}
			m := s.Status.Memory
			if m == nil || m.TotalBytes == nil || *m.TotalBytes == 0 || m.UsableBytes == nil {
				return fmt.Errorf("memory %+v", m)
			}
			if src := groupSource(s.Status.DataGroups, "Memory"); src != gav1.SourceLibvirt {
				return fmt.Errorf("memory source %q, want Libvirt", src)
			}
			return nil
		}).WithTimeout(120*time.Second).Should(Succeed(), withAgentdLog(gQGA+" memory from libvirt"))
		s, _ := gas(qga)
		qgaName = s.Name
		if s.Status.ActiveAgents != gav1.ActiveAgentsQGA {
			t.Errorf("%s activeAgents %q", gQGA, s.Status.ActiveAgents)
		}
	})

	t.Run("PrometheusScrapesWhatTheDashboardShows", func(t *testing.T) {
		startPrometheus(t)
		// Panels that must show data, and for which guests ("*": an aggregate without the
		// domain label). Load stays empty: Debian 12's qemu-ga 7.2 has no guest-get-load.
		want := map[string][]string{
			"Guests":                           {"*"},
			"Guest memory usage":               {gBoth, gQGA},
			"Filesystem usage (top $topn)":     {gBoth},
			"vCPUs online and logged-in users": {"*"},
			"Guest memory on the host: balloon size and QEMU RSS": {gBoth, gQGA},
			"Guest CPU time by mode":                              {"*"},
			"Guest disk throughput (top $topn)":                   {gBoth},
			"Guest disk operations and busy time (top $topn)":     {gBoth},
		}
		const emptyHere = "Guest load (1m, top $topn)"
		seen := map[string]bool{}
		for _, q := range dashboardQueries(t) {
			seen[q.panel] = true
			NewWithT(t).Eventually(func() error {
				res, err := promQuery(q.expr)
				if err != nil {
					return err // every query of the dashboard must evaluate on a real Prometheus
				}
				got := domainsIn(res)
				for _, d := range want[q.panel] {
					if !got[d] {
						return fmt.Errorf("panel %q: no series for %s in %v (query %s)", q.panel, d, res, q.expr)
					}
				}
				if q.panel == emptyHere && len(res) > 0 {
					return fmt.Errorf("panel %q shows %v; qemu-ga 7.2 was expected to lack guest-get-load", q.panel, res)
				}
				return nil
			}).WithTimeout(120*time.Second).Should(Succeed(), withAgentdLog("dashboard query of "+q.panel))
		}
		for p := range want {
			if !seen[p] {
				t.Errorf("the dashboard has no panel %q", p)
			}
		}
	})

	t.Run("SetVCPUsOfflinesAndOnlinesAndRefusesBeyondTheDomain", func(t *testing.T) {
		onlineInGuest := func() string {
			return strings.TrimSpace(guestExec(t, gQGA, "cat /sys/devices/system/cpu/online"))
		}
		vcpusInStatus := func(want int32) func() error {
			return func() error {
				s, err := gas(qga)
				if err != nil {
					return err
				}
				if s.Status.VCPUs == nil || *s.Status.VCPUs != want {
					return fmt.Errorf("status vcpus %v, want %d", s.Status.VCPUs, want)
				}
				return nil
			}
		}
		set := func(name string, count int32) *gav1.GuestAgentCommand {
			return command(t, name, qgaName, gav1.ActionSetVCPUs, func(c *gav1.GuestAgentCommand) {
				c.Spec.SetVCPUs = &gav1.SetVCPUsParams{Count: count}
			})
		}
		if c := set("e2e-vcpus-1", 1); c.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("SetVCPUs 1: %s %s %q", c.Status.Phase, c.Status.Reason, c.Status.Message)
		}
		if got := onlineInGuest(); got != "0" {
			t.Fatalf("guest online CPUs %q after SetVCPUs 1, want 0", got)
		}
		NewWithT(t).Eventually(vcpusInStatus(1)).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("vcpus 1 in the status"))
		if c := set("e2e-vcpus-2", 2); c.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("SetVCPUs 2: %s %s %q", c.Status.Phase, c.Status.Reason, c.Status.Message)
		}
		if got := onlineInGuest(); got != "0-1" {
			t.Fatalf("guest online CPUs %q after SetVCPUs 2, want 0-1", got)
		}
		NewWithT(t).Eventually(vcpusInStatus(2)).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("vcpus 2 in the status"))
		c := set("e2e-vcpus-3", 3)
		if c.Status.Phase != gav1.PhaseFailed || c.Status.Reason != gav1.ReasonInvalidSpec || !strings.Contains(c.Status.Message, "maximum of 2") {
			t.Fatalf("SetVCPUs 3 on a 2-vCPU domain: %s %s %q, want Failed InvalidSpec naming the maximum", c.Status.Phase, c.Status.Reason, c.Status.Message)
		}
		if got := onlineInGuest(); got != "0-1" {
			t.Fatalf("guest online CPUs %q after a refused SetVCPUs, want 0-1", got)
		}
	})

	t.Run("HookReachesTheGuestAgentAndCompletes", func(t *testing.T) {
		c := command(t, "e2e-hook", bothName, gav1.ActionHook, func(c *gav1.GuestAgentCommand) {
			c.Spec.Hook = &gav1.HookParams{Name: gav1.HookBeforeMigration, TimeoutSeconds: ptr.To[int32](30)}
		})
		if c.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("hook: %s %s", c.Status.Reason, c.Status.Message)
		}
		if out := guestExec(t, gBoth, "cat /run/hooks.log"); !strings.Contains(out, "before_migration") {
			t.Fatalf("the hook script did not run in the guest: %q", out)
		}
	})

	t.Run("GuestClockSetAfterResume", func(t *testing.T) {
		// The guest clock is put an hour back, then the domain is paused and resumed: agentd sets
		// the guest clock from the host through qemu-ga after the resume (timeSync).
		guestExec(t, gQGA, fmt.Sprintf("date -s @%d", time.Now().Add(-time.Hour).Unix()))
		skew := func() (time.Duration, error) {
			out, err := guestExecErr(gQGA, "date +%s")
			if err != nil {
				return 0, err
			}
			var sec int64
			if _, err := fmt.Sscan(strings.TrimSpace(out), &sec); err != nil {
				return 0, fmt.Errorf("guest date %q: %w", out, err)
			}
			return time.Since(time.Unix(sec, 0)).Abs(), nil
		}
		if d, err := skew(); err != nil || d < 50*time.Minute {
			t.Fatalf("the guest clock was not put back: skew %v, %v", d, err)
		}
		if out, err := virsh("suspend", gQGA); err != nil {
			t.Fatalf("virsh suspend: %v %s", err, out)
		}
		if out, err := virsh("resume", gQGA); err != nil {
			t.Fatalf("virsh resume: %v %s", err, out)
		}
		NewWithT(t).Eventually(skew).WithTimeout(30*time.Second).WithPolling(time.Second).
			Should(BeNumerically("<", 3*time.Second), withAgentdLog("guest clock set after resume"))
	})

	t.Run("HungAgentFailsWithinDeadline", func(t *testing.T) {
		// Stop qemu-ga inside the guest for 12 s.
		// (fire and forget: the agent that would report the exit status is the one we stop)
		guestStart(t, gQGA, "(sleep 1; kill -STOP $(pidof qemu-ga); sleep 12; kill -CONT $(pidof qemu-ga)) >/dev/null 2>&1 &", false)
		NewWithT(t).Eventually(func() error {
			if out, err := virsh("qemu-agent-command", gQGA, `{"execute":"guest-ping"}`, "--timeout", "1"); err == nil {
				return fmt.Errorf("qemu-ga still answers: %s", out)
			}
			return nil
		}).WithTimeout(10*time.Second).Should(Succeed(), "qemu-ga stopped in the guest")
		start := time.Now()
		c := command(t, "e2e-hung-ping", qgaName, gav1.ActionPing, func(c *gav1.GuestAgentCommand) {
			c.Spec.Agent = gav1.AgentSelectQemu
			c.Spec.DeadlineSeconds = ptr.To[int32](20)
		})
		if c.Status.Phase != gav1.PhaseFailed {
			t.Fatalf("a command to a hung agent must fail, got %s %s", c.Status.Phase, c.Status.Message)
		}
		if c.Status.Reason != gav1.ReasonAgentTimeout && c.Status.Reason != gav1.ReasonDeadlineExceeded &&
			c.Status.Reason != gav1.ReasonAgentUnavailable {
			t.Fatalf("unclear reason %q: %s", c.Status.Reason, c.Status.Message)
		}
		if time.Since(start) > 40*time.Second {
			t.Fatalf("took %s, beyond the deadline", time.Since(start))
		}
		// The other guest keeps being served meanwhile.
		p := command(t, "e2e-ping-other", bothName, gav1.ActionPing, func(c *gav1.GuestAgentCommand) {
			c.Spec.Agent = gav1.AgentSelectQemu
		})
		if p.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("the healthy guest was not served while the other hung: %s", p.Status.Message)
		}
		// The agent comes back by itself (SIGCONT) and answers again.
		NewWithT(t).Eventually(func() error {
			out, err := virsh("qemu-agent-command", gQGA, `{"execute":"guest-ping"}`, "--timeout", "2")
			if err != nil {
				return fmt.Errorf("%v %s", err, out)
			}
			return nil
		}).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("hung agent recovers"))
	})

	t.Run("AgentdRestartResumesWithoutDuplicatesOrBlanks", func(t *testing.T) {
		before := map[string]string{}
		for _, u := range []string{both, qga} {
			s, err := gas(u)
			if err != nil {
				t.Fatal(err)
			}
			before[u] = string(s.UID)
		}
		agentd.stop()
		agentd = startAgentd()
		NewWithT(t).Eventually(ready).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("agentd ready again"))
		// Watch for a while: one object per domain, same UID, never blanked.
		NewWithT(t).Consistently(func() error {
			for _, u := range []string{both, qga} {
				s, err := gas(u)
				if err != nil {
					return err
				}
				if string(s.UID) != before[u] {
					return fmt.Errorf("status of %s re-created after restart", u)
				}
				if s.Status.Hostname == "" || s.Status.OS == nil {
					return fmt.Errorf("status of %s blanked after restart: %+v", u, s.Status)
				}
			}
			return nil
		}).WithTimeout(15*time.Second).WithPolling(time.Second).Should(Succeed(), withAgentdLog("statuses after the restart"))
	})

	t.Run("AgentdKilledMidHookNotRepeated", func(t *testing.T) {
		// before_hibernation's script sleeps 8 s in the guest (hack/guest-initrd.sh): agentd is
		// killed (SIGKILL) while it runs. The new agentd fails the command with AgentRestarted
		// and does not send it again: the script ran exactly once.
		c := createCommand(t, "e2e-hook-killed", bothName, gav1.ActionHook, func(c *gav1.GuestAgentCommand) {
			c.Spec.Hook = &gav1.HookParams{Name: gav1.HookBeforeHibernation, TimeoutSeconds: ptr.To[int32](60)}
		})
		NewWithT(t).Eventually(func() error {
			got := &gav1.GuestAgentCommand{}
			if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(c), got); err != nil {
				return err
			}
			if got.Status.Phase != gav1.PhaseRunning {
				return fmt.Errorf("phase %q", got.Status.Phase)
			}
			return nil
		}).WithTimeout(30*time.Second).Should(Succeed(), withAgentdLog("hook running"))
		NewWithT(t).Eventually(func() (string, error) { return guestExecErr(gBoth, "cat /run/hooks-started.log") }).
			WithTimeout(30*time.Second).WithPolling(time.Second).Should(ContainSubstring("before_hibernation"), "the hook script started in the guest")
		agentd.kill()
		agentd = startAgentd()
		got := waitCommand(t, c)
		if got.Status.Phase != gav1.PhaseFailed || got.Status.Reason != gav1.ReasonAgentRestarted {
			t.Fatalf("killed mid-hook: %s %s (%s), want Failed AgentRestarted", got.Status.Phase, got.Status.Reason, got.Status.Message)
		}
		NewWithT(t).Eventually(ready).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("agentd ready again"))
		// The script logs its run when its sleep ends; then, for longer than the script takes, a
		// (wrong) re-send would run it again.
		hookRuns := func() (int, error) {
			out, err := guestExecErr(gBoth, "cat /run/hooks.log")
			return strings.Count(out, "before_hibernation"), err
		}
		NewWithT(t).Eventually(hookRuns).WithTimeout(30*time.Second).WithPolling(time.Second).Should(Equal(1), "runs of before_hibernation in the guest")
		NewWithT(t).Consistently(hookRuns).WithTimeout(10*time.Second).WithPolling(2*time.Second).Should(Equal(1), "runs of before_hibernation in the guest")
	})

	t.Run("LibvirtdRestartReconnects", func(t *testing.T) {
		if out, err := sh("bash", "-c", "kill $(cat /run/libvirtd.pid)"); err != nil {
			t.Fatalf("stopping libvirtd: %v %s", err, out)
		}
		NewWithT(t).Eventually(func() error {
			if ready() == nil {
				return fmt.Errorf("still ready")
			}
			return metricIs("guestagent_agentd_libvirt_connected", 0)
		}).WithTimeout(30*time.Second).Should(Succeed(), withAgentdLog("agentd notices libvirtd is gone"))
		if out, err := sh("bash", "hack/libvirt-env.sh"); err != nil {
			t.Fatalf("restarting libvirtd: %v %s", err, out)
		}
		NewWithT(t).Eventually(func() error {
			if err := ready(); err != nil {
				return err
			}
			return metricIs("guestagent_agentd_libvirt_connected", 1)
		}).WithTimeout(90*time.Second).Should(Succeed(), withAgentdLog("agentd reconnected"))
		c := command(t, "e2e-ping-after-libvirtd", qgaName, gav1.ActionPing, func(c *gav1.GuestAgentCommand) {
			c.Spec.Agent = gav1.AgentSelectQemu
		})
		if c.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("after libvirtd restart: %s %s", c.Status.Reason, c.Status.Message)
		}
	})

	t.Run("SaveAndRestoreResumeTheAgent", func(t *testing.T) {
		// virsh save stops the domain into a file (a new QEMU process restores it): the status keeps
		// its object and data while saved, and the agent is connected, answering and fresh again
		// after the restore, without waiting for a poll period.
		before, err := gas(qga)
		if err != nil {
			t.Fatal(err)
		}
		guestExec(t, gQGA, "echo kept > /run/save-marker")
		img := filepath.Join(os.Getenv("QGA_ENV"), gQGA+".sav")
		defer os.Remove(img)
		if out, err := virsh("save", gQGA, img); err != nil {
			t.Fatalf("virsh save: %v %s", err, out)
		}
		NewWithT(t).Eventually(func() error {
			s, err := gas(qga)
			switch {
			case err != nil:
				return err
			case s.UID != before.UID:
				return fmt.Errorf("object replaced while saved")
			case cond(s, gav1.ConditionAgentConnected) != metav1.ConditionFalse:
				return fmt.Errorf("AgentConnected %q", cond(s, gav1.ConditionAgentConnected))
			case s.Status.Hostname != gQGA:
				return fmt.Errorf("data blanked while saved: hostname %q", s.Status.Hostname)
			}
			return nil
		}).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("agent disconnected while saved"))
		start := time.Now()
		if out, err := virsh("restore", img); err != nil {
			t.Fatalf("virsh restore: %v %s", err, out)
		}
		NewWithT(t).Eventually(func() error {
			s, err := gas(qga)
			switch {
			case err != nil:
				return err
			case s.UID != before.UID:
				return fmt.Errorf("object replaced by the restore")
			case cond(s, gav1.ConditionQemuAgentConnected) != metav1.ConditionTrue:
				return fmt.Errorf("QemuAgentConnected %q", cond(s, gav1.ConditionQemuAgentConnected))
			case cond(s, gav1.ConditionAgentResponsive) != metav1.ConditionTrue:
				return fmt.Errorf("AgentResponsive %q", cond(s, gav1.ConditionAgentResponsive))
			case cond(s, gav1.ConditionStale) == metav1.ConditionTrue:
				return fmt.Errorf("data still stale")
			}
			return nil
		}).WithTimeout(120*time.Second).Should(Succeed(), withAgentdLog("agent back after restore"))
		logf("restore: agent connected and responsive in the status %s after virsh restore returned", time.Since(start).Round(time.Millisecond))
		if out := guestExec(t, gQGA, "cat /run/save-marker"); !strings.Contains(out, "kept") {
			t.Fatalf("the guest was not restored from its saved state (marker %q)", out)
		}
		c := command(t, "e2e-ping-after-restore", qgaName, gav1.ActionPing, func(c *gav1.GuestAgentCommand) {
			c.Spec.Agent = gav1.AgentSelectQemu
		})
		if c.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("ping after restore: %s %s", c.Status.Reason, c.Status.Message)
		}
	})

	t.Run("HibernateWithAFailedSaveTellsTheGuestAndKeepsItRunning", func(t *testing.T) {
		// libvirt writes managed save images to its save directory: read-only, the save fails.
		dir := "/var/lib/libvirt/qemu/save"
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := sh("mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", dir); err != nil {
			t.Fatalf("mounting a read-only save directory: %v %s", err, out)
		}
		defer func() {
			if out, err := sh("umount", dir); err != nil {
				t.Errorf("umount %s: %v %s", dir, err, out)
			}
		}()
		guestExec(t, gBoth, "rm -f /run/oga-lifecycle.log")
		c := command(t, "e2e-hibernate-fails", bothName, gav1.ActionHibernate, func(c *gav1.GuestAgentCommand) {
			c.Spec.Hibernate = &gav1.HibernateParams{LockTimeoutSeconds: ptr.To[int32](2), HookTimeoutSeconds: ptr.To[int32](40)}
			c.Spec.DeadlineSeconds = ptr.To[int32](85)
		})
		st := c.Status
		if st.Phase != gav1.PhaseFailed || st.Reason != gav1.ReasonSaveFailed {
			t.Fatalf("hibernate with a read-only save directory: %s %s %q (steps %+v)", st.Phase, st.Reason, st.Message, st.PowerSteps)
		}
		last := st.PowerSteps[len(st.PowerSteps)-1]
		if last.Method != gav1.PowerOvirt || last.Operation != gav1.OperationAfterHibernation || last.Result != gav1.StepAccepted {
			t.Errorf("last step %+v, want OvirtGuestAgent/AfterHibernation Accepted", last)
		}
		if out, _ := virsh("domstate", gBoth); strings.TrimSpace(out) != "running" {
			t.Fatalf("domstate %q after a failed save, want running", strings.TrimSpace(out))
		}
		NewWithT(t).Eventually(func() error {
			out, err := guestExecErr(gBoth, "cat /run/oga-lifecycle.log")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "after_hibernation failure=true") {
				return fmt.Errorf("oga-lifecycle.log %q", out)
			}
			return nil
		}).WithTimeout(30*time.Second).Should(Succeed(), withAgentdLog("after_hibernation with failure reaches the guest"))
	})

	t.Run("HibernateRunsHooksSavesAndRestoreSendsAfterHibernation", func(t *testing.T) {
		guestExec(t, gBoth, "rm -f /run/hooks.log") // the failed attempt above ran the same hooks
		// The guest has no desktop session, so the screen lock is never confirmed: that step times
		// out and the hibernation goes on, as in VDSM. Its before_hibernation hook takes 8 s.
		c := command(t, "e2e-hibernate", bothName, gav1.ActionHibernate, func(c *gav1.GuestAgentCommand) {
			c.Spec.Hibernate = &gav1.HibernateParams{LockTimeoutSeconds: ptr.To[int32](2), HookTimeoutSeconds: ptr.To[int32](40)}
			c.Spec.DeadlineSeconds = ptr.To[int32](85)
		})
		st := c.Status
		if st.Phase != gav1.PhaseSucceeded || st.Reason != gav1.ReasonHibernated {
			t.Fatalf("hibernate: %s %s %q (steps %+v)", st.Phase, st.Reason, st.Message, st.PowerSteps)
		}
		var ops []string
		for _, s := range st.PowerSteps {
			ops = append(ops, fmt.Sprintf("%s/%s:%s", s.Method, s.Operation, s.Result))
		}
		want := []string{"OvirtGuestAgent/LockScreen:TimedOut", "OvirtGuestAgent/BeforeHibernation:Accepted", "ManagedSave/:Accepted"}
		if strings.Join(ops, " ") != strings.Join(want, " ") {
			t.Errorf("steps %v, want %v", ops, want)
		}
		if out, _ := virsh("domstate", gBoth); !strings.Contains(out, "shut off") {
			t.Fatalf("domstate %q after Hibernate", strings.TrimSpace(out))
		}
		if out, _ := virsh("dominfo", gBoth); !regexp.MustCompile(`Managed save:\s+yes`).MatchString(out) {
			t.Fatalf("no managed save image after Hibernate:\n%s", out)
		}
		if out, err := virsh("start", gBoth); err != nil {
			t.Fatalf("virsh start (restore): %v %s", err, out)
		}
		// The memory came back: the hook log (tmpfs) still has before_hibernation, and agentd
		// sends after_hibernation once the oVirt agent is back.
		NewWithT(t).Eventually(func() error {
			out, err := guestExecErr(gBoth, "cat /run/hooks.log")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "before_hibernation") || !strings.Contains(out, "after_hibernation") {
				return fmt.Errorf("hooks.log %q", out)
			}
			return nil
		}).WithTimeout(120*time.Second).Should(Succeed(), withAgentdLog("after_hibernation reaches the restored guest"))
	})

	t.Run("SuspendToRamThroughQGAThenWakeUp", func(t *testing.T) {
		// The guest enters ACPI S3 through qemu-ga (libvirt PMSuspendForDuration): the command
		// succeeds on libvirt's PMSUSPENDED, the status shows the run state, and after a wake-up
		// the agent answers again.
		c := command(t, "e2e-suspend", qgaName, gav1.ActionSuspend, func(c *gav1.GuestAgentCommand) {
			c.Spec.Suspend = &gav1.SuspendParams{Mode: gav1.SuspendRam}
		})
		if st := c.Status; st.Phase != gav1.PhaseSucceeded || st.Reason != gav1.ReasonSuspended {
			t.Fatalf("suspend: %s %s %q (steps %+v)", st.Phase, st.Reason, st.Message, st.PowerSteps)
		}
		if n := len(c.Status.PowerSteps); n != 1 || c.Status.PowerSteps[0].Method != gav1.PowerQemu || c.Status.PowerSteps[0].Result != gav1.StepAccepted {
			t.Errorf("steps %+v, want one QemuGuestAgent Accepted", c.Status.PowerSteps)
		}
		if out, _ := virsh("domstate", gQGA); !strings.Contains(out, "pmsuspended") {
			t.Fatalf("domstate %q after Suspend", strings.TrimSpace(out))
		}
		NewWithT(t).Eventually(func() error {
			s, err := gas(qga)
			if err != nil {
				return err
			}
			if s.Status.Domain == nil || s.Status.Domain.State != "PMSuspended" {
				return fmt.Errorf("domain state %+v", s.Status.Domain)
			}
			return nil
		}).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("PMSuspended in the status"))
		if out, err := virsh("dompmwakeup", gQGA); err != nil {
			t.Fatalf("virsh dompmwakeup: %v %s", err, out)
		}
		NewWithT(t).Eventually(func() error {
			s, err := gas(qga)
			if err != nil {
				return err
			}
			switch {
			case s.Status.Domain == nil || s.Status.Domain.State != "Running":
				return fmt.Errorf("domain state %+v", s.Status.Domain)
			case cond(s, gav1.ConditionQemuAgentConnected) != metav1.ConditionTrue:
				// the guest reopens its virtio port on resume: the channel reconnects
				return fmt.Errorf("QemuAgentConnected %q", cond(s, gav1.ConditionQemuAgentConnected))
			case cond(s, gav1.ConditionAgentResponsive) != metav1.ConditionTrue:
				return fmt.Errorf("AgentResponsive %q", cond(s, gav1.ConditionAgentResponsive))
			}
			return nil
		}).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("Running, agent connected and responsive after the wake-up"))
		p := command(t, "e2e-ping-after-wakeup", qgaName, gav1.ActionPing, func(c *gav1.GuestAgentCommand) {
			c.Spec.Agent = gav1.AgentSelectQemu
		})
		if p.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("ping after wake-up: %s %s", p.Status.Reason, p.Status.Message)
		}
	})

	t.Run("SuspendToRamThroughTheOvirtAgentThenWakeUp", func(t *testing.T) {
		// The oVirt agent's hibernate {"state": "mem"}: the guest-side agent writes "mem" to
		// /sys/power/state (as the real agent's ovirt-hibernate does without pm-utils); the command
		// succeeds on libvirt's PMSUSPENDED, and after a wake-up the agent speaks again.
		c := command(t, "e2e-suspend-oga", bothName, gav1.ActionSuspend, func(c *gav1.GuestAgentCommand) {
			c.Spec.Suspend = &gav1.SuspendParams{Mode: gav1.SuspendRam}
			c.Spec.Agent = gav1.AgentSelectOvirt
		})
		if st := c.Status; st.Phase != gav1.PhaseSucceeded || st.Reason != gav1.ReasonSuspended {
			t.Fatalf("suspend: %s %s %q (steps %+v)", st.Phase, st.Reason, st.Message, st.PowerSteps)
		}
		if n := len(c.Status.PowerSteps); n != 1 || c.Status.PowerSteps[0].Method != gav1.PowerOvirt || c.Status.PowerSteps[0].Result != gav1.StepAccepted {
			t.Errorf("steps %+v, want one OvirtGuestAgent Accepted", c.Status.PowerSteps)
		}
		if out, _ := virsh("domstate", gBoth); !strings.Contains(out, "pmsuspended") {
			t.Fatalf("domstate %q after Suspend", strings.TrimSpace(out))
		}
		if out, err := virsh("dompmwakeup", gBoth); err != nil {
			t.Fatalf("virsh dompmwakeup: %v %s", err, out)
		}
		NewWithT(t).Eventually(func() error {
			s, err := gas(both)
			if err != nil {
				return err
			}
			switch {
			case s.Status.Domain == nil || s.Status.Domain.State != "Running":
				return fmt.Errorf("domain state %+v", s.Status.Domain)
			case cond(s, gav1.ConditionOvirtAgentConnected) != metav1.ConditionTrue:
				return fmt.Errorf("OvirtAgentConnected %q", cond(s, gav1.ConditionOvirtAgentConnected))
			case cond(s, gav1.ConditionQemuAgentConnected) != metav1.ConditionTrue:
				// both virtio ports are reopened on resume; later scenarios use the QEMU agent
				return fmt.Errorf("QemuAgentConnected %q", cond(s, gav1.ConditionQemuAgentConnected))
			case cond(s, gav1.ConditionAgentResponsive) != metav1.ConditionTrue:
				return fmt.Errorf("AgentResponsive %q", cond(s, gav1.ConditionAgentResponsive))
			}
			return nil
		}).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("Running, oVirt agent connected and responsive after the wake-up"))
		p := command(t, "e2e-ping-oga-after-wakeup", bothName, gav1.ActionPing, func(c *gav1.GuestAgentCommand) {
			c.Spec.Agent = gav1.AgentSelectOvirt
		})
		if p.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("ping through the oVirt agent after wake-up: %s %s", p.Status.Reason, p.Status.Message)
		}
	})

	t.Run("SuspendDiskAndHybridFailWhereTheGuestCannotHibernate", func(t *testing.T) {
		// The QGA-only guest's <pm> disables S4, and the guest has no swap to hibernate to.
		// Disk: libvirt refuses it before the guest is asked (the oVirt agent step that follows
		// is skipped: no channel). Hybrid: libvirt lets it through (it checks S3 only) and qemu-ga
		// answers that the guest does not support the mode. Both fail NotSuspended with the
		// refusal in their steps, and the guest keeps running with its agent.
		for _, tc := range []struct {
			mode    gav1.SuspendMode
			methods []gav1.PowerMethod
			refusal string
		}{
			{gav1.SuspendDisk, []gav1.PowerMethod{gav1.PowerQemu, gav1.PowerOvirt}, "S4 state is disabled"},
			{gav1.SuspendHybrid, []gav1.PowerMethod{gav1.PowerQemu}, "not supported by the guest"},
		} {
			c := command(t, "e2e-suspend-"+strings.ToLower(string(tc.mode)), qgaName, gav1.ActionSuspend, func(c *gav1.GuestAgentCommand) {
				c.Spec.Suspend = &gav1.SuspendParams{Mode: tc.mode}
			})
			st := c.Status
			if st.Phase != gav1.PhaseFailed || st.Reason != gav1.ReasonNotSuspended || !strings.Contains(st.Message, tc.refusal) {
				t.Fatalf("suspend %s: %s %s %q (steps %+v)", tc.mode, st.Phase, st.Reason, st.Message, st.PowerSteps)
			}
			var methods []gav1.PowerMethod
			for _, s := range st.PowerSteps {
				methods = append(methods, s.Method)
			}
			if !slices.Equal(methods, tc.methods) || st.PowerSteps[0].Result != gav1.StepRefused ||
				!strings.Contains(st.PowerSteps[0].Message, tc.refusal) {
				t.Errorf("suspend %s: steps %+v, want %v with the QEMU agent's step refused (%q)", tc.mode, st.PowerSteps, tc.methods, tc.refusal)
			}
			if out, _ := virsh("domstate", gQGA); strings.TrimSpace(out) != "running" {
				t.Fatalf("domstate %q after a refused suspend %s", strings.TrimSpace(out), tc.mode)
			}
		}
		p := command(t, "e2e-ping-after-refused-suspend", qgaName, gav1.ActionPing, func(c *gav1.GuestAgentCommand) {
			c.Spec.Agent = gav1.AgentSelectQemu
		})
		if p.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("ping after the refused suspends: %s %s", p.Status.Reason, p.Status.Message)
		}
	})

	t.Run("OvirtAgentExpiresWhileItsChannelIsGoneAndComesBack", func(t *testing.T) {
		// QEMU's end of the oVirt agent channel is switched to a null backend (QMP chardev-change;
		// the domain still defines the channel): agentd's connection ends and every reconnect
		// fails. The channel shows Disconnected at once, and 120 s after the agent's last message
		// (the responsive timeout) its data is stale although no connection exists to notice it.
		// Switched back to the unix socket, agentd reconnects and the data is fresh again.
		xml, err := virsh("dumpxml", gBoth)
		if err != nil {
			t.Fatalf("dumpxml: %v %s", err, xml)
		}
		var alias, path string
		for _, m := range regexp.MustCompile(`(?s)<channel type='unix'>.*?</channel>`).FindAllString(xml, -1) {
			if strings.Contains(m, "name='ovirt-guest-agent.0'") {
				if a := regexp.MustCompile(`<alias name='([^']+)'/>`).FindStringSubmatch(m); a != nil {
					alias = a[1]
				}
				if p := regexp.MustCompile(`<source mode='bind' path='([^']+)'/>`).FindStringSubmatch(m); p != nil {
					path = p[1]
				}
			}
		}
		if alias == "" || path == "" {
			t.Fatalf("no ovirt-guest-agent.0 channel (alias %q, path %q) in %s's XML", alias, path, gBoth)
		}
		backend := func(b map[string]any) {
			t.Helper()
			req, _ := json.Marshal(map[string]any{"execute": "chardev-change", "arguments": map[string]any{"id": "char" + alias, "backend": b}})
			if out, err := virsh("qemu-monitor-command", gBoth, string(req)); err != nil || strings.Contains(out, `"error"`) {
				t.Fatalf("chardev-change %s: %v %s", req, err, out)
			}
		}
		staleApps := func(s *gav1.GuestAgentStatus) (bool, gav1.StaleReason) {
			for _, g := range s.Status.DataGroups {
				if g.Name == "Applications" {
					return g.Stale, g.StaleReason
				}
			}
			return false, ""
		}
		backend(map[string]any{"type": "null", "data": map[string]any{}})
		cut := time.Now()
		NewWithT(t).Eventually(func() error {
			s, err := gas(both)
			if err != nil {
				return err
			}
			if c := cond(s, gav1.ConditionOvirtAgentConnected); c != metav1.ConditionFalse {
				return fmt.Errorf("OvirtAgentConnected %q", c)
			}
			if stale, _ := staleApps(s); stale {
				return fmt.Errorf("applications stale %v after the disconnect, before the responsive timeout", time.Since(cut))
			}
			return nil
		}).WithTimeout(30*time.Second).Should(Succeed(), withAgentdLog("oVirt agent channel disconnected"))
		NewWithT(t).Eventually(func() error {
			s, err := gas(both)
			if err != nil {
				return err
			}
			if stale, reason := staleApps(s); !stale || reason != gav1.StaleAgentNotResponsive {
				return fmt.Errorf("applications stale %v (%s)", stale, reason)
			}
			if c := cond(s, gav1.ConditionStale); c != metav1.ConditionTrue {
				return fmt.Errorf("Stale %q", c)
			}
			if c := cond(s, gav1.ConditionOvirtAgentConnected); c != metav1.ConditionFalse {
				return fmt.Errorf("OvirtAgentConnected %q while the channel is cut", c)
			}
			return nil
		}).WithTimeout(180*time.Second).WithPolling(time.Second).Should(Succeed(), withAgentdLog("oVirt agent data stale while its channel is cut"))
		t.Logf("oVirt agent data stale %v after its channel was cut", time.Since(cut).Round(time.Second))
		backend(map[string]any{"type": "socket", "data": map[string]any{
			"addr": map[string]any{"type": "unix", "data": map[string]any{"path": path}}, "server": true, "wait": false}})
		NewWithT(t).Eventually(func() error {
			s, err := gas(both)
			if err != nil {
				return err
			}
			if c := cond(s, gav1.ConditionOvirtAgentConnected); c != metav1.ConditionTrue {
				return fmt.Errorf("OvirtAgentConnected %q", c)
			}
			if stale, reason := staleApps(s); stale {
				return fmt.Errorf("applications still stale (%s)", reason)
			}
			return nil
		}).WithTimeout(90*time.Second).Should(Succeed(), withAgentdLog("oVirt agent back after its channel was restored"))
	})

	t.Run("RebootThroughQGA", func(t *testing.T) {
		c := command(t, "e2e-reboot", bothName, gav1.ActionReboot, func(c *gav1.GuestAgentCommand) {
			c.Spec.Agent = gav1.AgentSelectQemu
		})
		if c.Status.Phase != gav1.PhaseSucceeded {
			t.Fatalf("reboot: %s %s", c.Status.Reason, c.Status.Message)
		}
		NewWithT(t).Eventually(func() error {
			s, err := gas(both)
			if err != nil {
				return err
			}
			if cond(s, gav1.ConditionQemuAgentConnected) != metav1.ConditionTrue {
				return fmt.Errorf("QemuAgentConnected %q", cond(s, gav1.ConditionQemuAgentConnected))
			}
			// the guest's hooks log lives in /run (tmpfs): gone after a real reboot
			out, err := guestExecErr(gBoth, "cat /run/hooks.log 2>/dev/null || echo none")
			if err != nil {
				return err
			}
			if !strings.Contains(out, "none") {
				return fmt.Errorf("guest did not reboot (hooks log survived: %q)", out)
			}
			return nil
		}).WithTimeout(120*time.Second).Should(Succeed(), withAgentdLog("agent back after reboot"))
	})

	t.Run("ShutdownThroughQGAPowersOff", func(t *testing.T) {
		c := command(t, "e2e-shutdown", qgaName, gav1.ActionShutdown, nil)
		if c.Status.Phase != gav1.PhaseSucceeded || len(c.Status.Agents) != 1 || c.Status.Agents[0] != gav1.AgentQemu {
			t.Fatalf("shutdown: %s %s %v", c.Status.Reason, c.Status.Message, c.Status.Agents)
		}
		NewWithT(t).Eventually(func() error {
			out, _ := virsh("domstate", gQGA)
			if !strings.Contains(out, "shut off") {
				return fmt.Errorf("domstate %q", strings.TrimSpace(out))
			}
			return nil
		}).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("domain shut off"))
		NewWithT(t).Eventually(func() error {
			s, err := gas(qga)
			if err != nil {
				return err
			}
			if cond(s, gav1.ConditionAgentConnected) != metav1.ConditionFalse {
				return fmt.Errorf("AgentConnected %q", cond(s, gav1.ConditionAgentConnected))
			}
			if s.Status.Hostname == "" {
				return fmt.Errorf("data blanked when the guest stopped: %+v", s.Status)
			}
			return nil
		}).WithTimeout(60*time.Second).Should(Succeed(), withAgentdLog("conditions follow the guest"))
	})
	// A guest that ignores every polite request: its shutdown binaries do nothing, so the QEMU
	// agent and the oVirt agent accept (or refuse) and nothing happens, the ACPI button is
	// ignored, and only the listed Destroy brings the domain down. Each step is recorded.
	t.Run("ShutdownIgnoredEscalatesToDestroy", func(t *testing.T) {
		// A script, not a link to /bin/true: busybox applets dispatch on their link name.
		guestExec(t, gBoth, "printf '#!/bin/sh\\nexit 0\\n' >/run/noop && chmod +x /run/noop && "+
			"for b in /sbin/shutdown /sbin/poweroff /sbin/halt /usr/sbin/shutdown /usr/sbin/poweroff /usr/bin/poweroff /bin/poweroff /bin/halt; do "+
			"if [ -e $b ] || [ -L $b ]; then rm -f $b && cp /run/noop $b || mount --bind /run/noop $b; fi; done; pkill -x acpid; true")
		c := command(t, "e2e-shutdown-ignored", bothName, gav1.ActionShutdown, func(c *gav1.GuestAgentCommand) {
			c.Spec.Power = &gav1.PowerPolicy{
				Methods:            []gav1.PowerMethod{gav1.PowerQemu, gav1.PowerOvirt, gav1.PowerACPI, gav1.PowerDestroy},
				GracePeriodSeconds: ptr.To[int32](15),
			}
			c.Spec.DeadlineSeconds = ptr.To[int32](85)
		})
		st := c.Status
		if st.Phase != gav1.PhaseSucceeded || st.Reason != gav1.ReasonShutOff || !strings.HasPrefix(st.Message, "domain shut off after Destroy") {
			t.Fatalf("shutdown ignored: %s %s %q", st.Phase, st.Reason, st.Message)
		}
		if n := len(st.PowerSteps); n != 4 || st.PowerSteps[n-1].Method != gav1.PowerDestroy || st.PowerSteps[n-1].Result != gav1.StepAccepted {
			t.Fatalf("steps %+v, want 4 ending with Destroy Accepted", st.PowerSteps)
		}
		for _, s := range st.PowerSteps[:3] {
			if s.Result == gav1.StepAccepted || s.Result == gav1.StepError {
				t.Errorf("step %s %s (%s): the guest was expected to ignore or refuse it", s.Method, s.Result, s.Message)
			}
		}
		if st.PowerSteps[2].Method != gav1.PowerACPI || st.PowerSteps[2].Result != gav1.StepTimedOut {
			t.Errorf("ACPI step %+v, want TimedOut", st.PowerSteps[2])
		}
		out, _ := virsh("domstate", gBoth)
		if !strings.Contains(out, "shut off") {
			t.Fatalf("domstate %q after Destroy", strings.TrimSpace(out))
		}
	})
	_ = context.Background
}

func hasInterface(ifs []gav1.GuestInterface, mac, ip string) bool {
	for _, i := range ifs {
		if !strings.EqualFold(i.MAC, mac) {
			continue
		}
		for _, a := range i.IPv4 {
			if strings.HasPrefix(a, ip) {
				return true
			}
		}
	}
	return false
}

func hasFilesystem(fss []gav1.GuestFilesystem, mount, disk string) bool {
	for _, f := range fss {
		if f.Mountpoint == mount && f.TotalBytes != nil && *f.TotalBytes > 0 {
			for _, d := range f.Disks {
				if strings.HasPrefix(d, disk) {
					return true
				}
			}
		}
	}
	return false
}

func groupSource(gs []gav1.DataGroupStatus, name string) gav1.DataSource {
	for _, g := range gs {
		if g.Name == name {
			return g.Source
		}
	}
	return ""
}

func hasGroup(gs []gav1.DataGroupStatus, name string) bool {
	for _, g := range gs {
		if g.Name == name {
			return true
		}
	}
	return false
}
