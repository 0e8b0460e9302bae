// The models part of the trainer: built-in networks, teacher loading, saving.
export {
  buildNetwork,
  parameterCount,
  FEATURE_LAYER,
  LOGITS_LAYER,
  type ArchitectureFields,
} from "./build.ts";
export { saveNetwork, loadLayersModel, savedInputNormalization } from "./io.ts";
export { loadTeacher, asNetwork, adaptInput, withInputNormalization } from "./teacher.ts";
export { loadStudentTopology, modelInputShape, seedInitializers } from "./student.ts";
export { loadTeacherOfAnyFormat, teacherFormatOf, type TeacherSource } from "./teacher-formats.ts";
