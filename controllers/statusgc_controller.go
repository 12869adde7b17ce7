package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	gav1 "guestagent.io/operator/api/v1alpha1"
)

// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=guestagent.io,resources=guestagentstatuses,verbs=get;list;watch;delete

// StatusGCReconciler deletes the GuestAgentStatus objects (in all namespaces) labelled for a Node
// once that Node is deleted. agentd also sets the Node as owner, but the explicit deletion does
// not depend on the garbage collector and covers statuses whose owner reference got lost.
type StatusGCReconciler struct {
	// Client reads GuestAgentStatus objects from the cache and deletes them.
	Client client.Client
	// APIReader reads Nodes live, so a stale cache never makes a node look gone.
	APIReader client.Reader
}

// SetupWithManager watches Node deletions (metadata only) and registers the reconciler.
func (r *StatusGCReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	if r.Client == nil || r.APIReader == nil {
		return errors.New("StatusGCReconciler needs a Client and an APIReader")
	}
	onlyDeletes := predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("statusgc").
		For(&corev1.Node{}, builder.OnlyMetadata, builder.WithPredicates(onlyDeletes)).
		WithOptions(opts).
		Complete(r)
}

// Reconcile deletes the statuses of a Node that no longer exists.
func (r *StatusGCReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	exists, err := nodeExists(ctx, r.APIReader, req.Name)
	if err != nil || exists {
		return ctrl.Result{}, err
	}
	var list gav1.GuestAgentStatusList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{gav1.LabelNode: req.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("listing GuestAgentStatus objects of node %s: %w", req.Name, err)
	}
	var errs []error
	for i := range list.Items {
		if err := deleteStatus(ctx, r.Client, &list.Items[i], req.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return ctrl.Result{}, errors.Join(errs...)
}

// StatusSweeper periodically deletes GuestAgentStatus objects whose node label names a Node that
// does not exist: it catches Node deletions missed while no manager ran. It is a leader-elected
// manager Runnable; lists are paginated and metadata-only.
type StatusSweeper struct {
	// Client deletes statuses.
	Client client.Client
	// APIReader lists live, page by page (the cache cannot paginate).
	APIReader client.Reader
	// Interval between sweeps; the first runs at start.
	Interval time.Duration
	// PageSize is the list page size; zero means 500.
	PageSize int64
}

var _ manager.LeaderElectionRunnable = (*StatusSweeper)(nil)

// NeedLeaderElection reports that only the leader sweeps.
func (s *StatusSweeper) NeedLeaderElection() bool { return true }

// Start sweeps at once and then every Interval until ctx ends. A failed sweep is logged and
// retried at the next tick; it never stops the manager.
func (s *StatusSweeper) Start(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("statussweeper")
	ctx = ctrl.LoggerInto(ctx, log)
	if s.Interval <= 0 {
		return fmt.Errorf("status sweeper needs a positive interval, got %s", s.Interval)
	}
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Error(err, "Sweeping GuestAgentStatus objects of deleted nodes", "deleted", n)
		} else if n > 0 {
			log.Info("Swept GuestAgentStatus objects of deleted nodes", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep runs one pass and returns how many statuses it deleted.
func (s *StatusSweeper) Sweep(ctx context.Context) (int, error) {
	nodes, err := s.nodeNames(ctx)
	if err != nil {
		return 0, err
	}
	pageSize := s.PageSize
	if pageSize <= 0 {
		pageSize = 500
	}
	deleted := 0
	var errs []error
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentStatusList"))
	for cont := ""; ; {
		if err := s.APIReader.List(ctx, list, client.HasLabels{gav1.LabelNode}, client.Limit(pageSize), client.Continue(cont)); err != nil {
			return deleted, fmt.Errorf("listing GuestAgentStatus objects: %w", err)
		}
		for i := range list.Items {
			obj := &list.Items[i]
			node := obj.Labels[gav1.LabelNode]
			if _, ok := nodes[node]; ok {
				continue
			}
			// The node list may be older than the status: confirm before deleting.
			exists, err := nodeExists(ctx, s.APIReader, node)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if exists {
				nodes[node] = struct{}{}
				continue
			}
			obj.SetGroupVersionKind(gav1.GroupVersion.WithKind("GuestAgentStatus"))
			if err := deleteStatus(ctx, s.Client, obj, node); err != nil {
				errs = append(errs, err)
				continue
			}
			deleted++
		}
		if cont = list.GetContinue(); cont == "" {
			return deleted, errors.Join(errs...)
		}
	}
}

func (s *StatusSweeper) nodeNames(ctx context.Context) (map[string]struct{}, error) {
	names := map[string]struct{}{}
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NodeList"))
	for cont := ""; ; {
		if err := s.APIReader.List(ctx, list, client.Limit(500), client.Continue(cont)); err != nil {
			return nil, fmt.Errorf("listing nodes: %w", err)
		}
		for i := range list.Items {
			names[list.Items[i].Name] = struct{}{}
		}
		if cont = list.GetContinue(); cont == "" {
			return names, nil
		}
	}
}

// nodeExists reads the Node live (metadata only). A Node being deleted still exists.
func nodeExists(ctx context.Context, r client.Reader, name string) (bool, error) {
	n := &metav1.PartialObjectMetadata{}
	n.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Node"))
	err := r.Get(ctx, client.ObjectKey{Name: name}, n)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("getting node %s: %w", name, err)
	}
	return true, nil
}

// deleteStatus deletes one status of a gone node, preconditioned on the version we judged: if
// agentd on another node re-labelled it in between (migration), the delete fails and is skipped.
func deleteStatus(ctx context.Context, c client.Client, obj client.Object, node string) error {
	uid, rv := obj.GetUID(), obj.GetResourceVersion()
	ctrl.LoggerFrom(ctx).Info("Deleting GuestAgentStatus of a deleted node",
		"GuestAgentStatus", client.ObjectKeyFromObject(obj), "node", node)
	err := c.Delete(ctx, obj, client.Preconditions{UID: &uid, ResourceVersion: &rv})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deleting GuestAgentStatus %s: %w", client.ObjectKeyFromObject(obj), err)
	}
	return nil
}
