// Package web serves a migration's progress over HTTP for people and
// monitoring systems: Prometheus metrics at /metrics, a self-contained live
// page at /, and the progress report as JSON at /api/progress.
//
// It owns the HTTP server, the metric names and the page. It does not
// connect to PostgreSQL nor read the catalogues: it calls the sample
// function it is given (progress.Sampler underneath) on a ticker, keeps the
// latest look, and every request reads that look, so a scrape or a browser
// refresh never sends a query to the servers.
package web
