-- What the operator said when reviewing a prefix (the reason of a rejection, a note with an
-- approval), shown to the applicant in the portal (resolver/console, resolver/portal).
alter table enterprise_prefixes add column review_note text not null default '';
