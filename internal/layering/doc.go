// Package layering holds the test that keeps the core of fusillade free of adapters: the engine,
// the batch service, the HTTP API, ingestion and the Lambda handlers speak shared/domain's
// vocabulary, and only the wiring (shared/wire, the mains, the local stack) imports the packages
// named after a technology.
package layering
