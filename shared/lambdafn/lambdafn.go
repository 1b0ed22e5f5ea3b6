// Package lambdafn adapts fusillade's entry points to AWS Lambda event shapes: API Gateway HTTP
// API (payload v2) for the API, SQS batches with partial-batch responses for populate and the
// worker, EventBridge schedules for dispatch and purge, and a CloudFormation custom resource for
// the deployment's migration step. The local stack invokes these same
// handlers, so the event handling it exercises is the production code.
package lambdafn

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/cfn"
	"github.com/aws/aws-lambda-go/events"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/fusillade/fusillade/shared/domain"
	"github.com/fusillade/fusillade/shared/engine"
)

// SQSHandler is the signature of an SQS-triggered function with ReportBatchItemFailures.
type SQSHandler func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error)

// API adapts an http.Handler to API Gateway HTTP API v2 events.
func API(h http.Handler) func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return httpadapter.NewV2(h).ProxyWithContext
}

// Processor is the worker's engine.
type Processor interface {
	Process(ctx context.Context, work []domain.Work) []error
	Dispatch(ctx context.Context, models ...string) error
}

// WorkDecoder decodes a work-queue message body into a claimed request or a due dispatch (which has a
// model); sqsqueue.ParseMessage is the SQS wire form.
type WorkDecoder func(body string) (domain.Work, domain.Dispatch, error)

// Worker handles a batch of work-queue messages, decoded by decode. Every record whose processing
// failed is reported in batchItemFailures so that only it comes back; malformed records are
// logged and dropped (redelivering them cannot help). The age of each work message (since its
// SentTimestamp) goes to m's QueueAge; m nil reports nothing.
func Worker(p Processor, decode WorkDecoder, log *slog.Logger, m engine.Metrics) SQSHandler {
	if m == nil {
		m = engine.NopMetrics{}
	}
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		now := time.Now()
		var resp events.SQSEventResponse
		var work []domain.Work
		var ids []string
		var dispatches []domain.Dispatch
		for _, rec := range ev.Records {
			w, due, err := decode(rec.Body)
			switch {
			case err != nil:
				log.ErrorContext(ctx, "dropping malformed work message", "message_id", rec.MessageId, "err", err)
			case due.Model != "":
				dispatches = append(dispatches, due)
			default:
				work = append(work, w)
				ids = append(ids, rec.MessageId)
				if ms, err := strconv.ParseInt(rec.Attributes["SentTimestamp"], 10, 64); err == nil {
					m.QueueAge(max(now.Sub(time.UnixMilli(ms)), 0))
				}
			}
		}
		// A dispatch message may arrive up to a second before it is due (SQS delays are whole seconds): run
		// the dispatches in due order beside the work, each once it is due, so that a retry is claimed
		// as its back-off ends without holding up the requests delivered with it.
		dispatched := make(chan struct{})
		go func() {
			defer close(dispatched)
			sort.SliceStable(dispatches, func(i, j int) bool { return dispatches[i].Due.Before(dispatches[j].Due) })
			for i, k := range dispatches {
				if i > 0 && k == dispatches[i-1] {
					continue
				}
				k.Wait(ctx)
				if err := p.Dispatch(ctx, k.Model); err != nil {
					log.WarnContext(ctx, "due dispatch", "err", err) // the scheduled dispatch covers it
				}
			}
		}()
		for i, err := range p.Process(ctx, work) {
			if err != nil {
				log.WarnContext(ctx, "work message will be redelivered", "message_id", ids[i], "request_id", work[i].RequestID, "err", err)
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: ids[i]})
			}
		}
		<-dispatched
		return resp, nil
	}
}

// Populator expands batches.
type Populator interface {
	Populate(ctx context.Context, batchID string) error
}

// PopulateDecoder decodes a populate-queue message body into the id of the batch to expand;
// sqsqueue.ParsePopulate is the SQS wire form.
type PopulateDecoder func(body string) (batchID string, err error)

// Populate handles populate-queue messages, one batch each, decoded by decode.
func Populate(p Populator, decode PopulateDecoder, log *slog.Logger) SQSHandler {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		for _, rec := range ev.Records {
			batchID, err := decode(rec.Body)
			if err != nil {
				log.ErrorContext(ctx, "dropping malformed populate message", "message_id", rec.MessageId)
				continue
			}
			if err := p.Populate(ctx, batchID); err != nil {
				log.ErrorContext(ctx, "populate failed; will be redelivered", "batch_id", batchID, "err", err)
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: rec.MessageId})
			}
		}
		return resp, nil
	}
}

// Dispatcher is the scheduled dispatch.
type Dispatcher interface {
	DispatchAll(ctx context.Context) (engine.DispatchStats, error)
}

// Dispatch handles the schedule. The event is ignored: an EventBridge rule sends its envelope,
// EventBridge Scheduler sends whatever Input was configured, and both mean "run now".
func Dispatch(d Dispatcher) func(ctx context.Context, ev json.RawMessage) (engine.DispatchStats, error) {
	return func(ctx context.Context, _ json.RawMessage) (engine.DispatchStats, error) {
		return d.DispatchAll(ctx)
	}
}

// Maintainer is the scheduled maintenance.
type Maintainer interface {
	Maintain(ctx context.Context) (engine.MaintenanceStats, error)
}

// Maintenance handles the maintenance schedule (the purge function, named in the deployed shape
// after the last of its duties): expiry, rescue of stuck work, finalisation stragglers and the
// purge of retained data.
func Maintenance(s Maintainer) func(ctx context.Context, ev json.RawMessage) (engine.MaintenanceStats, error) {
	return func(ctx context.Context, _ json.RawMessage) (engine.MaintenanceStats, error) {
		return s.Maintain(ctx)
	}
}

// SchemaResourceID is the physical id of the migration custom resource. It never changes, so an
// update is never taken for a replacement (which would end in a Delete of the old id).
const SchemaResourceID = "fusillade-schema"

// Migration handles the deployment's migration custom resource. Create and Update apply pending
// migrations, so a stack update migrates before the functions that depend on the resource are
// replaced, and report the schema version as the attribute SchemaVersion; a failure fails the
// deployment, which rolls back. Delete does nothing: the schema and its data outlive the stack,
// as the bucket does.
func Migration(migrate func(ctx context.Context) (version, applied int, err error), log *slog.Logger) cfn.CustomResourceLambdaFunction {
	return cfn.LambdaWrap(func(ctx context.Context, ev cfn.Event) (string, map[string]any, error) {
		if ev.RequestType == cfn.RequestDelete {
			return SchemaResourceID, nil, nil
		}
		version, applied, err := migrate(ctx)
		if err != nil {
			log.ErrorContext(ctx, "migration failed", "request", ev.RequestType, "err", err)
			return SchemaResourceID, nil, err
		}
		log.InfoContext(ctx, "schema migrated", "request", ev.RequestType, "version", version, "applied", applied)
		return SchemaResourceID, map[string]any{"SchemaVersion": version}, nil
	})
}
