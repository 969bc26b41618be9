// HTTP handlers of the MPI as plain functions over core::HttpRequest/HttpResponse, for the app
// to mount behind its authentication: POST /fhir/Patient/$match (FHIR R4 operation) and the
// review-queue and golden-record admin API under /api/mpi. Errors are OperationOutcomes with
// precise statuses (400 malformed, 401 no reviewer, 404 unknown, 405 method, 409 conflict,
// 415 media type, 503 store unavailable). Thread-safety: as MpiService (any thread).
#pragma once

#include <optional>
#include <string>

#include "engine/core/http_types.h"
#include "engine/mpi/mpi_service.h"

namespace switchboard::mpi {

// Dispatches one request by method and path. Returns nullopt when the path is not one of the
// routes below, so the caller can try its other routes. `reviewer` is the authenticated user's
// identity, recorded on decisions and undos (required there: empty answers 401).
//   POST /fhir/Patient/$match
//   GET  /api/mpi/reviews?status=open|merged|not-duplicate|all&minScore=&limit=&before=
//   GET  /api/mpi/reviews/{id}
//   POST /api/mpi/reviews/{id}/decision   {"decision":"merge"|"not-duplicate","reason":"..."}
//   POST /api/mpi/reviews/{id}/undo       {"reason":"..."} (body optional)
//   GET  /api/mpi/golden/{id}
std::optional<core::HttpResponse> routeMpiHttp(MpiService& mpi, const core::HttpRequest& req,
                                               const std::string& reviewer);

// The handlers behind the routes, for callers with their own router.
core::HttpResponse handlePatientMatch(MpiService& mpi, const core::HttpRequest& req);
core::HttpResponse handleReviewList(MpiService& mpi, const core::HttpRequest& req);
core::HttpResponse handleReviewGet(MpiService& mpi, const std::string& id);
core::HttpResponse handleReviewDecision(MpiService& mpi, const core::HttpRequest& req,
                                        const std::string& id, const std::string& reviewer);
core::HttpResponse handleReviewUndo(MpiService& mpi, const core::HttpRequest& req,
                                    const std::string& id, const std::string& reviewer);
core::HttpResponse handleGoldenGet(MpiService& mpi, const std::string& id);

// HTTP status for an Error code (kNotFound 404, kConflict 409, kTransient 503, ...).
int httpStatusFor(const Error& e);

}  // namespace switchboard::mpi
