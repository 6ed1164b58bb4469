// Package catalog reads what pgmove needs to know of a database from its
// system catalogue: tables and their replica identity, partitions,
// sequences and their values, extensions, slots, publications and
// subscriptions. One query per .sql file under sql/.
//
// It only reads. Deciding what a finding means belongs to check; changing
// anything belongs to the packages named after each step.
package catalog
