package domain

// NewRequest is one validated input line to insert.
type NewRequest struct {
	ID       string // uuid
	Line     int
	CustomID string
	Model    string
	Path     string
	Body     []byte
}

// RequestSource yields the requests of a batch one at a time; it returns io.EOF at the end. A
// *Error from Next fails the batch with that error (bad input); any other error aborts
// populate so that the message is retried.
type RequestSource interface {
	Next() (NewRequest, error)
}

// PopulateResult says what inserting a batch's requests did.
type PopulateResult struct {
	Inserted int
	Models   []string
	Skipped  bool // the batch was not validating (already populated, failed or cancelled)
	Cached   int  // lines ended from the result cache (coalescing), with no upstream call
	Failed   *Error
}
