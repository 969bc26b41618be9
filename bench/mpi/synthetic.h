// Deterministic synthetic patient generator for the MPI benchmark: Zipf-distributed names,
// households (spouses sharing a phone, twins, parent and child of the same name) and realistic
// duplicates (typos, nicknames, transposed dates, moves, missing fields, swapped names).
// Thread-safety: a generator instance is single-threaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/mpi/person_record.h"

namespace switchboard::mpi::bench {

struct SyntheticPatients {
  std::vector<PersonRecord> records;
  std::vector<uint32_t> person;  // truth: records with equal values are the same person
};

// n records, about `duplicateRate` of them duplicates of earlier persons.
SyntheticPatients generatePatients(size_t n, uint64_t seed, double duplicateRate = 0.2);

// A perturbed copy of r (one to three errors), as a duplicate arriving later would look.
PersonRecord perturb(const PersonRecord& r, uint64_t seed);

// The record as a FHIR R4 Patient resource (JSON).
std::string toFhirJson(const PersonRecord& p);

}  // namespace switchboard::mpi::bench
