package execute

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// Backoff of a command whose execution failed with an error (e.g. its claim could not be
// written); it is retried, behind the commands queued meanwhile.
const (
	errRetryMin = 500 * time.Millisecond
	errRetryMax = 30 * time.Second
)

// dispatcher feeds the fair queue from the informer of this node's commands and runs the
// workers that execute them.
type dispatcher struct {
	e     *Executor
	cache cache.Cache
	log   logr.Logger
}

// NeedLeaderElection: every node's agentd executes its own commands.
func (dispatcher) NeedLeaderElection() bool { return false }

// Start queues every command of the informer's initial listing before the first one is handed
// out (so the initial order is already fair), then executes until ctx ends and the running
// commands finished.
func (d dispatcher) Start(ctx context.Context) error {
	e := d.e
	inf, err := d.cache.GetInformer(ctx, &gav1.GuestAgentCommand{})
	if err != nil {
		return fmt.Errorf("getting the GuestAgentCommand informer: %w", err)
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    e.enqueue,
		UpdateFunc: func(_, obj any) { e.enqueue(obj) },
	})
	if err != nil {
		return fmt.Errorf("watching GuestAgentCommands: %w", err)
	}
	defer func() { _ = inf.RemoveEventHandler(reg) }()
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil
	}
	select {
	case <-e.swept:
	case <-ctx.Done():
		return nil
	}
	d.log.Info("Executing commands", "workers", e.MaxConcurrent, "queued", e.queue.len())
	var wg sync.WaitGroup
	for range e.MaxConcurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.work(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// enqueue queues a command of this node that may need executing: Scheduled, or Running under a
// claim of this incarnation (a lost claim reply). Reconcile checks everything again.
func (e *Executor) enqueue(obj any) {
	cmd, ok := obj.(*gav1.GuestAgentCommand)
	if !ok || !e.mine(cmd) || e.claimedHere(cmd) {
		return // another node's, or claimed by this incarnation already (its own Running event)
	}
	if cmd.Status.Phase != gav1.PhaseScheduled &&
		(cmd.Status.Phase != gav1.PhaseRunning || cmd.Status.ClaimedBy != e.InstanceID) {
		return
	}
	e.queue.add(client.ObjectKeyFromObject(cmd), cmd.Spec.Target)
}

// work executes queued commands until ctx ends.
func (d dispatcher) work(ctx context.Context) {
	e := d.e
	for {
		key, target, ok := e.queue.next(ctx)
		if !ok {
			return
		}
		res, err := e.Reconcile(ctrl.LoggerInto(ctx, d.log), ctrl.Request{NamespacedName: key})
		e.queue.done(key)
		e.mu.Lock()
		if err != nil {
			e.failures[key]++
		} else {
			delete(e.failures, key)
		}
		n := e.failures[key]
		e.mu.Unlock()
		delay := res.RequeueAfter
		if err != nil && ctx.Err() == nil {
			delay = min(errRetryMin<<min(n-1, 10), errRetryMax)
			d.log.Error(err, "Executing command failed; retrying", "guestAgentCommand", klog.KRef(key.Namespace, key.Name),
				"retryAfter", delay.String())
		}
		if delay > 0 && ctx.Err() == nil {
			time.AfterFunc(delay, func() { e.queue.add(key, target) })
		}
	}
}
