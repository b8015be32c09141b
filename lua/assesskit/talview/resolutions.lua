--- Every typo and ambiguity of the Talview seed, and how the catalogue resolved it.
--
-- Prose for people and for the docs generator (`tools/catalogue-doc.lua`, docs/catalogue.md),
-- kept apart from `assesskit.talview.catalogue` so that the runtime catalogue holds only the
-- endpoints. Plain data, no requires. Each entry: `seed_line` (the seed line read),
-- `seed` (its text), `resolved` (the catalogue's request line, or what was decided; nil when
-- the line is not a request line at all), `why`.
-- @internal assesskit.talview.resolutions

return {
  { seed_line = 4143, seed = "title string true Filter records based on title",
    resolved = "GET /models/assessment",
    why = "a list filter marked mandatory: list calls take at least page and pageSize (the seed's "
      .. "introduction) and every other filter is optional, so no list filter is required" },
  { seed_line = 4993, seed = "role integer true Filter records based on role",
    resolved = "GET /models/assessment-collaborator",
    why = "list filters (role, assessment_id, user_id) marked mandatory; treated as optional "
      .. "filters like every other list's" },
  { seed_line = 14297, seed = "type integer false Filter records based on the type",
    resolved = "GET /user/me/permission",
    why = "'is optional: false' on a list filter; treated as an optional filter like every "
      .. "other list's" },
  { seed_line = 31, seed = "POST /oauth2/token",
    resolved = nil,
    why = "the OAuth2 token endpoint is not a resource: assesskit.talview.auth implements POST "
      .. "/oauth2/token (password, refresh_token, JWT-bearer grants)" },
  { seed_line = 61, seed = "POST /oauth2/token",
    resolved = nil,
    why = "the OAuth2 token endpoint (JWT-bearer sample) is handled by assesskit.talview.auth, "
      .. "not by the catalogue" },
  { seed_line = 156, seed = "GET /some-end-point",
    resolved = nil,
    why = "an illustration of the error format on a placeholder path, not an endpoint" },
  { seed_line = 172, seed = "GET /some-end-point?suppress_error_code=true",
    resolved = nil,
    why = "an illustration of the API-wide suppress_error_code query parameter on a placeholder "
      .. "path, not an endpoint" },
  { seed_line = 216, seed = "Profile Image Placeholder",
    resolved = "GET /helpers/placeholder",
    why = "the helpers section lost every path; the image placeholder is served at "
      .. "/helpers/placeholder with the documented query parameters, and answers an image "
      .. "(response = \"binary\")" },
  { seed_line = 237, seed = "GET HTTP/1.1",
    resolved = "GET /helpers/settings",
    why = "the path was lost; the helpers section serves settings at /helpers/settings (Yii2 "
      .. "REST collection under the helpers area)" },
  { seed_line = 261, seed = "GET HTTP/1.1",
    resolved = "GET /helpers/settings/{id}",
    why = "the path was lost; a single setting is /helpers/settings/{id} (Yii2 REST 'view')" },
  { seed_line = 278, seed = "GET HTTP/1.1",
    resolved = "GET /helpers/settings/{settings_id}/allowed-value",
    why = "the path was lost; the seed says the allowed-value endpoint 'is nested within the "
      .. "settings end point' and the samples carry settings_id, so it is "
      .. "/helpers/settings/{settings_id}/allowed-value" },
  { seed_line = 300, seed = "GET HTTP/1.1",
    resolved = "GET /helpers/settings/{settings_id}/allowed-value/{id}",
    why = "the path was lost; one allowed value of a setting, nested within the settings "
      .. "endpoint like the list above" },
  { seed_line = 567, seed = "new_passowrd_repeat String Yes",
    resolved = "body field new_password_repeat",
    why = "a typo: the validation errors table below and the reset-password change endpoint "
      .. "(line 14061) spell it new_password_repeat" },
  { seed_line = 626, seed = "GET /user/me/settings_data/46",
    resolved = "GET /user/me/settings_data/{id}",
    why = "46 is the example record id of the sample response" },
  { seed_line = 668, seed = "GET admin/organization/2/category",
    resolved = "GET /admin/organization/{oid}/category",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 710, seed = "GET admin/organization/<oid>/category/<id>",
    resolved = "GET /admin/organization/{oid}/category/{id}",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 738, seed = "POST admin/organization/<oid>/category",
    resolved = "POST /admin/organization/{oid}/category",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 771, seed = "PUT admin/organization/<oid>/category/<id>",
    resolved = "PUT /admin/organization/{oid}/category/{id}",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 882, seed = "GET /models/custom-field-master/<id>",
    resolved = "GET /admin/organization/{oid}/custom-field-master/{id}",
    why = "the 'Retrieve a Custom Field Master' line of the admin section names /models/ but "
      .. "its URL parameters are oid and id, like every other admin custom-field-master line; "
      .. "/models/custom-field-master/{id} is documented separately (line 7475)" },
  { seed_line = 954, seed = "PUT /organization/<oid>/custom-field-master/<id>",
    resolved = "PUT /admin/organization/{oid}/custom-field-master/{id}",
    why = "every other admin custom-field-master line is under /admin/organization/{oid}; the "
      .. "URL parameters table lists oid" },
  { seed_line = 996, seed = "DELETE /admin/organization/<oid>/custom-field-masterin/<id>",
    resolved = "DELETE /admin/organization/{oid}/custom-field-master/{id}",
    why = "'custom-field-masterin' is a typo of custom-field-master (the resource of every "
      .. "neighbouring line)" },
  { seed_line = 1157, seed = "GET admin/organization/2/form",
    resolved = "GET /admin/organization/{oid}/form",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 1215, seed = "POST admin/organization/2/form",
    resolved = "POST /admin/organization/{oid}/form",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 1269, seed = "PUT admin/organization/2/form/1",
    resolved = "PUT /admin/organization/{oid}/form/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 1322, seed = "DELETE admin/organization/<oid>/form/<id>",
    resolved = "DELETE /admin/organization/{oid}/form/{id}",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 1368, seed = "GET admin/organization/2/menu-card",
    resolved = "GET /admin/organization/{oid}/menu-card",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 1405, seed = "GET admin/organization/2/menu-card/1",
    resolved = "GET /admin/organization/{oid}/menu-card/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 1438, seed = "POST admin/organization/2/menu-card",
    resolved = "POST /admin/organization/{oid}/menu-card",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 1479, seed = "PUT admin/organization/2/menu-card/1",
    resolved = "PUT /admin/organization/{oid}/menu-card/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 1514, seed = "DELETE /admin/organization/2/menu-card/1",
    resolved = "DELETE /admin/organization/{oid}/menu-card/{id}",
    why = "the example's concrete organization id (2) stands for {oid}; the trailing concrete "
      .. "id is the example record: {id}" },
  { seed_line = 1719, seed = "organization_id integer flase",
    resolved = "organization_id required",
    why = "'flase' is a typo of false, and false in an 'is optional' column means required" },
  { seed_line = 1753, seed = "GET admin/organization/2/notification-template",
    resolved = "GET /admin/organization/{oid}/notification-template",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 1792, seed = "GET admin/organization/2/notification-template/16",
    resolved = "GET /admin/organization/{oid}/notification-template/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 1824, seed = "POST admin/organization/<oid>/notification-template",
    resolved = "POST /admin/organization/{oid}/notification-template",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 1861, seed = "PUT admin/organization/<oid>/notification-template/<id>",
    resolved = "PUT /admin/organization/{oid}/notification-template/{id}",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 1990, seed = "GET admin/notification-template-type",
    resolved = "GET /admin/notification-template-type",
    why = "admin/notification-template-tag (line 1937) has the leading slash; every path is "
      .. "rooted at the API base" },
  { seed_line = 2029, seed = "GET admin/notification-template-type/<id>",
    resolved = "GET /admin/notification-template-type/{id}",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 2203, seed = "GET admin/organization/3",
    resolved = "GET /admin/organization/{id}",
    why = "3 is the example organization id; the URL parameters table names it id" },
  { seed_line = 2287, seed = "POST admin/organization",
    resolved = "POST /admin/organization",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 2440, seed = "PUT admin/organization/3",
    resolved = "PUT /admin/organization/{id}",
    why = "3 is the example organization id; the URL parameters table names it id" },
  { seed_line = 2656, seed = "DELETE /admin/organization/<oid>/rbac",
    resolved = "DELETE /admin/organization/{oid}/rbac",
    why = "RBAC assignments are keyed by item_name (+ user_id / organization_id) as in the PUT "
      .. "above, not by id; no {id} is added and the PUT's query parameters are documented for "
      .. "the DELETE (none required)" },
  { seed_line = 2696, seed = "GET admin/organization/2/select-field-data",
    resolved = "GET /admin/organization/{oid}/select-field-data",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 2735, seed = "POST admin/organization/<oid>/select-field-data",
    resolved = "POST /admin/organization/{oid}/select-field-data",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 2778, seed = "PUT admin/organization/2/select-field-data/1",
    resolved = "PUT /admin/organization/{oid}/select-field-data/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 2815, seed = "DELETE admin/organization/<oid>/select-field-data/<id>",
    resolved = "DELETE /admin/organization/{oid}/select-field-data/{id}",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 2849, seed = "GET admin/organization/2/settings-data",
    resolved = "GET /admin/organization/{oid}/settings-data",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 2879, seed = "GET admin/organization/2/settings-data/68",
    resolved = "GET /admin/organization/{oid}/settings-data/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 2906, seed = "POST admin/organization/2/settings-data",
    resolved = "POST /admin/organization/{oid}/settings-data",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 2943, seed = "PUT admin/organization/2/settings-data/68",
    resolved = "PUT /admin/organization/{oid}/settings-data/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 2981, seed = "DELETE admin/organization/2/settings-data/68",
    resolved = "DELETE /admin/organization/{oid}/settings-data/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 3011, seed = "GET admin/organization/2/user/41/category",
    resolved = "GET /admin/organization/{oid}/user/{uid}/category",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the concrete user id (41) stands for "
      .. "{uid}" },
  { seed_line = 3046, seed = "GET admin/organization/2/user/41/category/1",
    resolved = "GET /admin/organization/{oid}/user/{uid}/category/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the concrete user id (41) stands for "
      .. "{uid}; the trailing concrete id is the example record: {id}" },
  { seed_line = 3072, seed = "POST admin/organization/2/user/41/category",
    resolved = "POST /admin/organization/{oid}/user/{uid}/category",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the concrete user id (41) stands for "
      .. "{uid}" },
  { seed_line = 3105, seed = "PUT admin/organization/2/user/41/category/1",
    resolved = "PUT /admin/organization/{oid}/user/{uid}/category/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the concrete user id (41) stands for "
      .. "{uid}; the trailing concrete id is the example record: {id}" },
  { seed_line = 3141, seed = "DELETE /admin/organization/2/user/41/category/1",
    resolved = "DELETE /admin/organization/{oid}/user/{uid}/category/{id}",
    why = "the example's concrete organization id (2) stands for {oid}; the concrete user id "
      .. "(41) stands for {uid}; the trailing concrete id is the example record: {id}" },
  { seed_line = 3186, seed = "GET admin/organization/2/filter",
    resolved = "GET /admin/organization/{oid}/filter",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 3218, seed = "GET admin/organization/2/filter/154",
    resolved = "GET /admin/organization/{oid}/filter/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 3246, seed = "POST admin/organization/2/filter",
    resolved = "POST /admin/organization/{oid}/filter",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}" },
  { seed_line = 3287, seed = "PUT admin/organization/2/filter/154",
    resolved = "PUT /admin/organization/{oid}/filter/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 3327, seed = "DELETE admin/organization/2/filter/154",
    resolved = "DELETE /admin/organization/{oid}/filter/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the trailing concrete id is the "
      .. "example record: {id}" },
  { seed_line = 3361, seed = "GET admin/organization/2/user/41/permission",
    resolved = "GET /admin/organization/{oid}/user/{uid}/permission",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the concrete user id (41) stands for "
      .. "{uid}" },
  { seed_line = 3389, seed = "GET /admin/organization/2/user/41/permission/435367",
    resolved = "GET /admin/organization/{oid}/user/{uid}/permission/{id}",
    why = "the example's concrete organization id (2) stands for {oid}; the concrete user id "
      .. "(41) stands for {uid}; the trailing concrete id is the example record: {id}" },
  { seed_line = 3416, seed = "POST admin/organization/2/user/41/permission",
    resolved = "POST /admin/organization/{oid}/user/{uid}/permission",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the concrete user id (41) stands for "
      .. "{uid}" },
  { seed_line = 3451, seed = "DELETE admin/organization/2/user/41/permission/72",
    resolved = "DELETE /admin/organization/{oid}/user/{uid}/permission/{id}",
    why = "every path is rooted at the API base; the leading slash was lost; the example's "
      .. "concrete organization id (2) stands for {oid}; the concrete user id (41) stands for "
      .. "{uid}; the trailing concrete id is the example record: {id}" },
  { seed_line = 3498, seed = "GET /admin/organization/<organization_id>/amo",
    resolved = "GET /admin/organization/{oid}/amo",
    why = "<organization_id> is the organization placeholder, named {oid} like every other "
      .. "admin path" },
  { seed_line = 3537, seed = "GET /admin/organization/<organization_id>/amo/<id>",
    resolved = "GET /admin/organization/{oid}/amo/{id}",
    why = "<organization_id> is the organization placeholder, named {oid} like every other "
      .. "admin path" },
  { seed_line = 3568, seed = "POST /admin/organization/<organization_id>/amo",
    resolved = "POST /admin/organization/{oid}/amo",
    why = "<organization_id> is the organization placeholder, named {oid} like every other "
      .. "admin path" },
  { seed_line = 3605, seed = "PUT /admin/organization/<organization_id>/amo/<id>",
    resolved = "PUT /admin/organization/{oid}/amo/{id}",
    why = "<organization_id> is the organization placeholder, named {oid} like every other "
      .. "admin path" },
  { seed_line = 3637, seed = "DELETE /admin/organization/<organization_id>/amo/<id>",
    resolved = "DELETE /admin/organization/{oid}/amo/{id}",
    why = "<organization_id> is the organization placeholder, named {oid} like every other "
      .. "admin path" },
  { seed_line = 3788, seed = "GET /models/answer/id",
    resolved = "GET /models/answer/{id}",
    why = "a literal 'id' where the record id goes; the URL parameters table names id" },
  { seed_line = 3904, seed = "GET /models/answer-codesubmission",
    resolved = "GET /models/answer-code-submission",
    why = "the API's own _links (lines 3707, 3769, 3824) spell the resource "
      .. "answer-code-submission (Yii2 kebab-case of AnswerCodeSubmission)" },
  { seed_line = 3943, seed = "GET /models/answer-codesubmission/<id>",
    resolved = "GET /models/answer-code-submission/{id}",
    why = "as above: answer-code-submission, the spelling of the API's own _links" },
  { seed_line = 4319, seed = "PUT /models/assessment/id",
    resolved = "PUT /models/assessment/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 4411, seed = "description text false The description of the assessment",
    resolved = "title required, description optional",
    why = "the update table lists description twice, true and false; the update of every other "
      .. "field is optional, so description is not enforced" },
  { seed_line = 4418, seed = "DELETE /models/assessment",
    resolved = "DELETE /models/assessment/{id}",
    why = "the DELETE lost its {id}: 'based on the assessment id mentioned in the URL'" },
  { seed_line = 4716, seed = "GET /models/assessment-candidate-file/id",
    resolved = "GET /models/assessment-candidate-file/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 4760, seed = "PUT /models/assessment-candidate-file/id",
    resolved = "PUT /models/assessment-candidate-file/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 4784, seed = "DELETE /models/assessment-candidate-file/id",
    resolved = "DELETE /models/assessment-candidate-file/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 4849, seed = "GET /models/assessment-category/id",
    resolved = "GET /models/assessment-category/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 4872, seed = "POST /models/assessment-category/",
    resolved = "POST /models/assessment-category",
    why = "trailing slash dropped: the collection is /models/assessment-category like its list "
      .. "line" },
  { seed_line = 4929, seed = "DELETE /models/assessment-category/id",
    resolved = "DELETE /models/assessment-category/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 4999, seed = "GET /models/assessment-collaborator/id",
    resolved = "GET /models/assessment-collaborator/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 5053, seed = "PUT /models/assessment-collaborator/id",
    resolved = "PUT /models/assessment-collaborator/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 5084, seed = "DELETE /models/assessment-collaborator",
    resolved = "DELETE /models/assessment-collaborator/{id}",
    why = "the DELETE lost its {id}: a single collaborator is deleted (every other collaborator "
      .. "line takes /{id})" },
  { seed_line = 5333, seed = "max_section_time interval second true, when Section type is Objective",
    resolved = "not required",
    why = "conditionally mandatory fields ('true, when Section type is ...') depend on the "
      .. "section type; they are documented but not enforced as required" },
  { seed_line = 5976, seed = "PUT /user/me/calendar",
    resolved = "PUT /user/me/calendar/{id}",
    why = "the URL parameters table of 'Update Calendar Details' lists id ('updates the "
      .. "calendar details based on id'); the second description of the same endpoint (line "
      .. "14209) has /{id}" },
  { seed_line = 6018, seed = "DELETE /user/me/calendar",
    resolved = "DELETE /user/me/calendar/{id}",
    why = "'deletes the calendar details based on id': the DELETE lost its {id}" },
  { seed_line = 6214, seed = "POST /models/candidate/",
    resolved = "POST /models/candidate",
    why = "trailing slash dropped: the collection is /models/candidate like its list line" },
  { seed_line = 6324, seed = "DELETE /models/candidate/id",
    resolved = "DELETE /models/candidate/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 6639, seed = "Parameter Type Mandatory Description",
    resolved = "candidate_id .. started_at are body fields (candidate_id, school required)",
    why = "the create table is labelled 'Query Parameters' but documents the fields of the "
      .. "record created by the POST (the sample response echoes them)" },
  { seed_line = 7123, seed = "candidate_id integer false Filter records based on Candidate ID",
    resolved = "query parameter candidate_id",
    why = "listed under URL parameters of the retrieve, but the path has only {id}: it can only "
      .. "travel as a query filter" },
  { seed_line = 7524, seed = "Parameter Type isOptional Description",
    resolved = "type, label, key are body fields, required",
    why = "the create table is labelled 'Query Parameters' but documents the fields of the "
      .. "record created by the POST; isOptional false means required" },
  { seed_line = 7607, seed = "GET api/user/display-picture",
    resolved = "GET /user/display-picture",
    why = "the rest of the API has no /api prefix and the API's own _links say "
      .. "/user/display-picture (line 370 and others); the leading slash was lost too" },
  { seed_line = 7641, seed = "POST api/user/display-picture",
    resolved = "POST /user/display-picture",
    why = "as above: /user/display-picture, the path of the API's own _links" },
  { seed_line = 7678, seed = "DELETE api/user/display-picture",
    resolved = "DELETE /user/display-picture",
    why = "as above: /user/display-picture, the path of the API's own _links" },
  { seed_line = 7837, seed = "PUT /models/evaluation<id>",
    resolved = "PUT /models/evaluation/{id}",
    why = "'/models/evaluation<id>' lost the slash before the placeholder" },
  { seed_line = 7881, seed = "DELETE /models/evaluation<id>",
    resolved = "DELETE /models/evaluation/{id}",
    why = "'/models/evaluation<id>' lost the slash before the placeholder" },
  { seed_line = 8677, seed = "GET /models/event-candidate/402",
    resolved = "GET /models/event-candidate/{id}",
    why = "402 is the example record id" },
  { seed_line = 9101, seed = "PUT /models/external-assessment/id",
    resolved = "PUT /models/external-assessment/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 9152, seed = "DELETE /models/external-assessment/id",
    resolved = "DELETE /models/external-assessment/{id}",
    why = "a literal 'id' where the record id goes" },
  { seed_line = 9201, seed = "GET /models/external-assessment",
    resolved = "GET /models/evaluation-invitation",
    why = "this second block (lines 9158-9420) documents the Evaluation Invitation object "
      .. "(external_assessment_id, code, attend_url, report_url), not the External Assessment "
      .. "of lines 8914-9157; its request lines were copied from the block above. Two "
      .. "resources cannot share a path, so it is served at /models/evaluation-invitation (the "
      .. "Yii2 kebab-case of its heading, like every other /models resource)" },
  { seed_line = 9258, seed = "reprot_url text false",
    resolved = "query parameter report_url",
    why = "a typo: the sample object (line 9180) has report_url; same for the body tables of "
      .. "lines 9339 and 9386" },
  { seed_line = 9260, seed = "assessment_section_candidate_is integer false",
    resolved = "query parameter assessment_section_candidate_id",
    why = "a typo: the sample object (line 9170) has assessment_section_candidate_id" },
  { seed_line = 9264, seed = "GET /models/external-assessment/<id>",
    resolved = "GET /models/evaluation-invitation/{id}",
    why = "Evaluation Invitation block (see line 9201): /models/evaluation-invitation/{id}" },
  { seed_line = 9301, seed = "POST /models/external-assessment",
    resolved = "POST /models/evaluation-invitation",
    why = "Evaluation Invitation block (see line 9201): /models/evaluation-invitation" },
  { seed_line = 9343, seed = "PUT /models/external-assessment/id",
    resolved = "PUT /models/evaluation-invitation/{id}",
    why = "Evaluation Invitation block (see line 9201), and a literal 'id' where the record id "
      .. "goes" },
  { seed_line = 9390, seed = "DELETE /models/external-assessment/id",
    resolved = "DELETE /models/evaluation-invitation/{id}",
    why = "Evaluation Invitation block (see line 9201), and a literal 'id' where the record id "
      .. "goes" },
  { seed_line = 10279, seed = "DELETE /models/form-instance-file<id>",
    resolved = "DELETE /models/form-instance-file/{id}",
    why = "'/models/form-instance-file<id>' lost the slash before the placeholder" },
  { seed_line = 10881, seed = "Parameter Type is optional Description",
    resolved = "no required filter",
    why = "every filter (id, ids, is_private, name, description) is marked false under 'is "
      .. "optional'; filters of a list cannot all be mandatory (id and ids exclude each "
      .. "other), so the column was written as 'mandatory: false'" },
  { seed_line = 13184, seed = "Parameter Type is optional Description",
    resolved = "no required filter",
    why = "as for the menu-card list: id, ids and name cannot all be mandatory filters; read as "
      .. "'mandatory: false'" },
  { seed_line = 13216, seed = "name text truw",
    resolved = "name required",
    why = "'truw' is a typo of true" },
  { seed_line = 13405, seed = "PUT /models/skill",
    resolved = "PUT /models/skill/{id}",
    why = "the PUT lost its {id}; the URL parameter table lists id, like every other update" },
  { seed_line = 13963, seed = "DELETE models/user/<id>",
    resolved = "DELETE /models/user/{id}",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 14041, seed = "POST user/reset-password/change",
    resolved = "POST /user/reset-password/change",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 14065, seed = "GET user/reset-password/verify-link?c=",
    resolved = "GET /user/reset-password/verify-link",
    why = "the query string is the example of the documented query parameter c (the reset "
      .. "token), not part of the path; the leading slash was lost" },
  { seed_line = 14126, seed = "GET models/user-calendar",
    resolved = "GET /models/user-calendar",
    why = "every path is rooted at the API base; the leading slash was lost" },
  { seed_line = 14163, seed = "An user must have the role of evaluator to create an user calendar.",
    resolved = "user.me_calendar.create: roles = { \"Evaluator\" }",
    why = "the only role restriction outside the actions section" },
  { seed_line = 14165, seed = "POST /user/me/calendar",
    resolved = "POST /user/me/calendar",
    why = "/user/me/calendar is documented twice (lines 5857-6030 and 14085-14260, the second "
      .. "under 'User Calendar' with the /models/user-calendar list); both describe the same "
      .. "endpoint with the same body, so one entry (line 5932); the second adds that only "
      .. "Evaluators may create, kept as roles" },
  { seed_line = 14209, seed = "PUT /user/me/calendar/<id>",
    resolved = "PUT /user/me/calendar/{id}",
    why = "the second description of the calendar update (see line 14165); same endpoint as "
      .. "line 5976" },
  { seed_line = 14815, seed = "Event Panel Notify",
    resolved = "POST /actions/event-panel-notify",
    why = "an action documented without a request line; named like its neighbours (Event "
      .. "Candidate Notify is /actions/event-candidate-notify)" },
  { seed_line = 15571, seed = "DELETE delete To delete an existing section",
    resolved = nil,
    why = "a row of the section-workflow 'List of Types' table (DELETE = delete), not a request "
      .. "line" },
  { seed_line = 15985, seed = "Parameter Type Description is optional commnet",
    resolved = "no required body field",
    why = "question_id, choice, text, status and question are all marked false under 'is "
      .. "optional', but choice (MCQ) and text (subjective) exclude each other and status has "
      .. "a default (1000); read as 'mandatory: false'. Same for /attend/answer (line 17189)" },
}
