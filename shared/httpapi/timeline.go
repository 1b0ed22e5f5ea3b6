package httpapi

import (
	"net/http"

	"github.com/fusillade/fusillade/shared/domain"
)

// timeline is the answer of GET /v1/batches/{id}/timeline. Times are unix milliseconds: a batch
// of a few seconds still has distinct points.
type timeline struct {
	Object  string          `json:"object"`
	BatchID string          `json:"batch_id"`
	Total   int             `json:"total"`
	StartMS int64           `json:"start_ms"`
	EndMS   int64           `json:"end_ms"`
	Data    []timelinePoint `json:"data"`
}

type timelinePoint struct {
	AtMS      int64 `json:"at_ms"`
	Completed int   `json:"completed"`
	Failed    int   `json:"failed"`
}

// batchTimeline is GET /v1/batches/{id}/timeline?points=N (an extension): the batch's finished
// lines over time as N cumulative points (default domain.DefaultTimelinePoints, at most
// domain.MaxTimelinePoints), evenly spaced from when it started running to when it ended (now
// while it runs). The dashboard's counts-over-time chart draws it.
func (s *server) batchTimeline(w http.ResponseWriter, r *http.Request) {
	q := newQuery(r)
	n := q.int("points", domain.DefaultTimelinePoints, 1, domain.MaxTimelinePoints)
	if q.err != nil {
		s.error(w, r, q.err)
		return
	}
	tenant := principal(r).TenantID
	b, err := s.store.ViewBatch(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	start, end := domain.TimelineSpan(b, s.now())
	t, err := s.store.BatchTimeline(r.Context(), tenant, b.ID, b.Counts.Total, start, end, n)
	if err != nil {
		s.error(w, r, err)
		return
	}
	out := timeline{Object: "batch.timeline", BatchID: b.ID, Total: t.Total, StartMS: t.Start.UnixMilli(), EndMS: t.End.UnixMilli(),
		Data: make([]timelinePoint, len(t.Points))}
	for i, p := range t.Points {
		out.Data[i] = timelinePoint{AtMS: p.At.UnixMilli(), Completed: p.Completed, Failed: p.Failed}
	}
	writeJSON(w, http.StatusOK, out)
}
