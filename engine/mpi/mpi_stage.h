// The "mpi" pipeline stage: matches the Patient of a mapped FHIR Bundle (or a bare Patient)
// against the master patient index before delivery, and makes the Bundle point at the
// enterprise record the MPI chose (conditional create on the enterprise identifier), or holds
// the message for review when the match is doubtful and the channel says so.
// Thread-safety: process() is called concurrently; the MpiService synchronises itself. settle()
// answers for the submissions process() made on the calling thread since that thread's last
// settle() of the same stage (the engine runs a batch's stages and their settle on one thread).
#pragma once

#include <memory>

#include "engine/core/connector.h"
#include "engine/mpi/mpi_service.h"

namespace switchboard::mpi {

// Registers stage type "mpi" with config:
//   "on_possible_match": "hold" (default: the message fails with a "held for review" error and
//                        is replayed after the reviewer decides) | "create" (send as a new patient)
//   "source_system":     name of the source in the MPI (default: the channel id)
void registerMpiStage(core::ConnectorRegistry& registry, std::shared_ptr<MpiService> service);

}  // namespace switchboard::mpi
