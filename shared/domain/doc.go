// Package domain holds fusillade's vocabulary: files, batches, requests and models, the states
// they move through and the rules for moving between them (which transitions are allowed, how a
// retry is scheduled, when a batch's work is over). It has no I/O; the Postgres store, the HTTP
// API and the functions all speak in these types.
package domain
