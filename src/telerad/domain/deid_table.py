"""PS3.15 Table E.1-1 (a transcribed subset) and Table E.3.10-1 (safe private), as data.

One line per attribute: ``keyword basic-action [column=action ...]``; the columns are the
options of the table: safe (Retain Safe Private), uids, device, inst, chars, full
(Retain Longitudinal Full Dates), mod (Modified Dates), desc (Clean Descriptors),
struct (Clean Structured Content), graph (Clean Graphics). ``telerad.domain.deid``
parses it and checks every keyword against the pydicom data dictionary.
"""

from __future__ import annotations

_D = "full=K mod=C"  # the temporal columns shared by most dates and times
# keyword  basic-profile-action  [option=action ...]   (PS3.15 Table E.1-1, a subset: see docs)
TABLE_TEXT = f"""
AccessionNumber Z
AcquisitionComments X desc=C
AcquisitionContextSequence X
AcquisitionDate X/D {_D}
AcquisitionDateTime X/D {_D}
AcquisitionDeviceProcessingDescription X/D device=K desc=C
AcquisitionProtocolDescription X desc=C
AcquisitionTime X/D {_D}
ActualHumanPerformersSequence X
AdditionalPatientHistory X desc=C
AdmissionID X
AdmittingDate X {_D}
AdmittingDiagnosesCodeSequence X desc=C
AdmittingDiagnosesDescription X desc=C
AdmittingTime X {_D}
Allergies X desc=C
AuthorObserverSequence X
BranchOfService X
CassetteID X device=K
CommentsOnThePerformedProcedureStep X desc=C
ConcatenationUID U uids=K
ConsultingPhysicianName X
ContentCreatorName Z
ContentCreatorIdentificationCodeSequence X
ContentDate X/D {_D}
ContentSequence X struct=C
ContentTime X/D {_D}
ContextGroupExtensionCreatorUID U uids=K
ContrastBolusAgent Z/D desc=C
ContributionDescription X desc=C
CountryOfResidence X
CreatorVersionUID U uids=K
CurrentPatientLocation X
CurveDate X {_D}
CurveTime X {_D}
CustodialOrganizationSequence X
DataSetTrailingPadding X
Date D {_D}
DateOfLastCalibration X device=K {_D}
DateOfSecondaryCapture X {_D}
DateTime D {_D}
DerivationDescription X desc=C
DetectorID X device=K
DeviceDescription X device=K desc=C
DeviceSerialNumber X/Z/D device=K
DeviceUID U uids=K device=K
DigitalSignaturesSequence X
DimensionOrganizationUID U uids=K
DischargeDiagnosisDescription X desc=C
DistributionAddress X
DistributionName X
DoseReferenceUID U uids=K
EthnicGroup X chars=K
FailedSOPInstanceUIDList U uids=K
FiducialUID U uids=K
FillerOrderNumberImagingServiceRequest Z
FrameAcquisitionDateTime X {_D}
FrameComments X desc=C
FrameOfReferenceUID U uids=K
FrameReferenceDateTime X {_D}
GantryID X device=K
GeneratorID X device=K
GraphicAnnotationSequence X graph=C
HumanPerformerName X
HumanPerformerOrganization X
IconImageSequence X
IdentifyingComments X desc=C
ImageComments X desc=C
ImagePresentationComments X desc=C
ImagingServiceRequestComments X desc=C
Impressions X desc=C
InstanceCoercionDateTime X {_D}
InstanceCreationDate X/D {_D}
InstanceCreationTime X/Z/D {_D}
InstanceCreatorUID U uids=K
InstitutionAddress X inst=K
InstitutionCodeSequence X/Z/D inst=K
InstitutionName X/Z/D inst=K
InstitutionalDepartmentName X inst=K
InstitutionalDepartmentTypeCodeSequence X inst=K
InsurancePlanIdentification X
IntendedRecipientsOfResultsIdentificationSequence X
InterpretationApproverSequence X
InterpretationAuthor X
InterpretationDiagnosisDescription X desc=C
InterpretationIDIssuer X
InterpretationRecorder X
InterpretationText X desc=C
InterpretationTranscriber X
IrradiationEventUID U uids=K
IssuerOfAdmissionID X
IssuerOfPatientID X
IssuerOfServiceEpisodeID X
LargePaletteColorLookupTableUID U uids=K
LastMenstrualDate X {_D}
MAC X
MediaStorageSOPInstanceUID U uids=K
MedicalAlerts X desc=C
MedicalRecordLocator X
MilitaryRank X
ModifiedAttributesSequence X
ModifiedImageDescription X desc=C
ModifyingDeviceID X device=K
NameOfPhysiciansReadingStudy X
NamesOfIntendedRecipientsOfResults X
Occupation X desc=C
OperatorIdentificationSequence X
OperatorsName X/Z/D
OrderCallbackPhoneNumber X
OrderEnteredBy X
OrderEntererLocation X
OriginalAttributesSequence X
OtherPatientIDs X
OtherPatientIDsSequence X
OtherPatientNames X
PaletteColorLookupTableUID U uids=K
ParticipantSequence X
PatientAddress X
PatientAge X chars=K
PatientBirthDate Z
PatientBirthName X
PatientBirthTime X
PatientComments X desc=C
PatientID Z
PatientInsurancePlanCodeSequence X
PatientMotherBirthName X
PatientName Z
PatientPrimaryLanguageCodeSequence X
PatientReligiousPreference X
PatientSex Z chars=K
PatientSexNeutered X/Z chars=K
PatientSize X chars=K
PatientState X chars=K
PatientTelecomInformation X
PatientTelephoneNumbers X
PatientTransportArrangements X
PatientWeight X chars=K
PerformedLocation X
PerformedProcedureStepDescription X desc=C
PerformedProcedureStepEndDate X {_D}
PerformedProcedureStepEndTime X {_D}
PerformedProcedureStepID X
PerformedProcedureStepStartDate X {_D}
PerformedProcedureStepStartTime X {_D}
PerformedStationAETitle X
PerformedStationGeographicLocationCodeSequence X
PerformedStationName X
PerformingPhysicianIdentificationSequence X
PerformingPhysicianName X
PersonAddress X
PersonIdentificationCodeSequence D
PersonName D
PersonTelephoneNumbers X
PhysicianApprovingInterpretation X
PhysiciansOfRecord X
PhysiciansOfRecordIdentificationSequence X
PhysiciansReadingStudyIdentificationSequence X
PlacerOrderNumberImagingServiceRequest Z
PlateID X device=K
PreMedication X desc=C
PregnancyStatus X chars=K
ProtocolName X/D desc=C
ReasonForStudy X desc=C
ReasonForTheRequestedProcedure X desc=C
ReferencedFrameOfReferenceUID U uids=K
ReferencedImageSequence X/Z/U* uids=K
ReferencedPatientAliasSequence X
ReferencedPatientPhotoSequence X
ReferencedPatientSequence X
ReferencedPerformedProcedureStepSequence X/Z/D
ReferencedSOPInstanceUID U uids=K
ReferencedSOPInstanceUIDInFile U uids=K
ReferencedStudySequence X/Z
ReferringPhysicianAddress X
ReferringPhysicianIdentificationSequence X
ReferringPhysicianName Z
ReferringPhysicianTelephoneNumbers X
RegionOfResidence X
RelatedFrameOfReferenceUID U uids=K
RequestAttributesSequence X
RequestedContrastAgent X desc=C
RequestedProcedureComments X desc=C
RequestedProcedureDescription X/Z desc=C
RequestedProcedureID X
RequestedProcedureLocation X
RequestedSOPInstanceUID U uids=K
RequestingPhysician X
RequestingService X
ResponsibleOrganization X
ResponsiblePerson X
ResultsComments X desc=C
ResultsDistributionListSequence X
ResultsIDIssuer X
ReviewerName X/Z
ScheduledHumanPerformersSequence X
ScheduledPatientInstitutionResidence X
ScheduledPerformingPhysicianIdentificationSequence X
ScheduledPerformingPhysicianName X
ScheduledProcedureStepDescription X desc=C
ScheduledProcedureStepEndDate X {_D}
ScheduledProcedureStepEndTime X {_D}
ScheduledProcedureStepID X
ScheduledProcedureStepLocation X
ScheduledProcedureStepStartDate X {_D}
ScheduledProcedureStepStartTime X {_D}
ScheduledStationAETitle X
ScheduledStationGeographicLocationCodeSequence X
ScheduledStationName X
ScheduledStudyLocation X
ScheduledStudyLocationAETitle X
SeriesDate X/D {_D}
SeriesDescription X desc=C
SeriesInstanceUID U uids=K
SeriesTime X/D {_D}
ServiceEpisodeDescription X desc=C
ServiceEpisodeID X
SmokingStatus X chars=K
SOPInstanceUID U uids=K
SourceImageSequence X/Z/U* uids=K
SpecialNeeds X chars=K
StationName X/Z/D device=K
StorageMediaFileSetUID U uids=K
StudyComments X desc=C
StudyDate Z {_D}
StudyDescription X desc=C
StudyID Z
StudyIDIssuer X
StudyInstanceUID U uids=K
StudyTime Z {_D}
SynchronizationFrameOfReferenceUID U uids=K
TargetUID U uids=K
TemplateExtensionCreatorUID U uids=K
TemplateExtensionOrganizationUID U uids=K
TextComments X desc=C
TextString X desc=C
TextValue X struct=C
Time D {_D}
TimeOfLastCalibration X device=K {_D}
TimeOfSecondaryCapture X {_D}
TimezoneOffsetFromUTC X {_D}
TopicAuthor X
TopicKeywords X
TopicSubject X
TopicTitle X
TransactionUID U uids=K
UID U uids=K
UnformattedTextValue X graph=C
VerifyingObserverIdentificationCodeSequence Z
VerifyingObserverName D
VerifyingObserverSequence X/D
VerifyingOrganization X
VisitComments X desc=C
"""

#: Private attributes that PS3.15 Table E.3.10-1 lists as safe: (creator, group, element byte).
SAFE_PRIVATE: frozenset[tuple[str, int, int]] = frozenset(
    {
        ("SIEMENS MR HEADER", 0x0019, 0x0A),  # NumberOfImagesInMosaic
        ("SIEMENS MR HEADER", 0x0019, 0x0B),  # SliceMeasurementDuration
        ("SIEMENS MR HEADER", 0x0019, 0x0C),  # B_value
        ("SIEMENS MR HEADER", 0x0019, 0x0D),  # DiffusionDirectionality
        ("SIEMENS MR HEADER", 0x0019, 0x0E),  # DiffusionGradientDirection
        ("SIEMENS MR HEADER", 0x0019, 0x27),  # B_matrix
        ("GEMS_PARM_01", 0x0043, 0x39),  # slop_int_6..9 (b value)
    }
)
