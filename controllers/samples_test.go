package controllers

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	gav1 "guestagent.io/operator/api/v1alpha1"
	"guestagent.io/operator/internal/testenv"
)

// TestSamples checks that config/samples has a command for every action, that the apiserver
// accepts each (schema and CEL, server-side dry run) and that the controller would not reject it.
func TestSamples(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "guestagent_v1alpha1_guestagentcommand_*.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	seen := map[gav1.Action]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		g.Expect(err).NotTo(HaveOccurred())
		cmd := &gav1.GuestAgentCommand{}
		g.Expect(yaml.UnmarshalStrict(data, cmd)).To(Succeed(), f)
		cmd.Namespace = ns
		g.Expect(k8s.Create(context.Background(), cmd, client.DryRunAll)).To(Succeed(), f)
		g.Expect(gav1.ValidateCommandSpec(&cmd.Spec)).To(Succeed(), f)
		seen[cmd.Spec.Action] = true
	}
	for _, a := range []gav1.Action{gav1.ActionShutdown, gav1.ActionReboot, gav1.ActionHook, gav1.ActionLockScreen,
		gav1.ActionLogOff, gav1.ActionFreezeFilesystems, gav1.ActionThawFilesystems, gav1.ActionSetTime, gav1.ActionSetVCPUs, gav1.ActionPing,
		gav1.ActionHibernate, gav1.ActionSuspend} {
		g.Expect(seen).To(HaveKey(a), "no sample for action %s", a)
	}
}
